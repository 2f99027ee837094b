//! `lemur appliance apply-seed`: the files the seed becomes at every boot.

use super::{SSH_KEY, certificate, full_seed, lemur, read, seed_file, stderr, stdout, walk};
use crate::support::{
    mode_of, nft_accepts_the_images_firewall_with, rsyslog_accepts_debians_configuration_with,
    scratch,
};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

/// `lemur appliance apply-seed` with `seed` into `run`, its console warning in
/// `run/issue.d`.
fn apply_unchecked(seed: &Path, run: &Path) -> Output {
    lemur(
        &[
            "appliance",
            "apply-seed",
            "--seed",
            seed.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
            "--issue-file",
            warning_file(run).to_str().unwrap(),
        ],
        &[],
    )
}

/// [`apply_unchecked`], which must succeed.
fn apply(seed: &Path, run: &Path) -> Output {
    let applied = apply_unchecked(seed, run);
    assert!(applied.status.success(), "{}", stderr(&applied));
    applied
}

/// The console warning apply-seed writes under `run`.
fn warning_file(run: &Path) -> PathBuf {
    run.join("issue.d/40-lemur-seed.issue")
}

#[test]
fn without_a_seed_the_appliance_boots_on_safe_defaults() {
    let dir = scratch();
    let run = dir.path().join("run");
    let applied = apply(&dir.path().join("missing.toml"), &run);
    assert!(
        stderr(&applied).contains("no seed file; using the defaults"),
        "{}",
        stderr(&applied)
    );
    let network = read(&run.join("systemd/network/10-lemur.network"));
    assert!(
        network.contains("[Match]\nName=en* eth*\n")
            && network.contains("DHCP=yes\n")
            && network.contains("[DHCPv4]\nUseHostname=no\n"),
        "{network}"
    );
    assert!(!network.contains("Address="), "{network}");
    assert_eq!(
        read(&run.join("systemd/timesyncd.conf.d/lemur.conf"))
            .lines()
            .last(),
        Some(
            "NTP=0.debian.pool.ntp.org 1.debian.pool.ntp.org 2.debian.pool.ntp.org 3.debian.pool.ntp.org"
        )
    );
    let appliance = run.join("lemur-appliance");
    assert_eq!(read(&appliance.join("hostname")), "lemur-hsm\n");
    for absent in [
        "rsyslog-remote.conf",
        "rsyslog-remote-ca.pem",
        "ssh-enabled",
        "authorized_keys",
        "firewall-ssh.nft",
    ] {
        assert!(!appliance.join(absent).exists(), "{absent}");
    }
}

#[test]
fn a_bad_part_of_the_seed_falls_back_alone_and_the_boot_goes_on() {
    let dir = scratch();
    let run = dir.path().join("run");
    let seed = seed_file(
        dir.path(),
        "hostname = \"lemur_hsm\"\n[network]\nmode = \"static\"\naddress = \"192.0.2.10/24\"\n\
         gateway = \"10.0.0.1\"\n[time]\nntp = [\"ntp.example.test\"]\n",
    );
    let said = stderr(&apply(&seed, &run));
    assert!(
        said.contains("hostname: \"lemur_hsm\" may hold only")
            && said.contains("network.gateway: 10.0.0.1 is outside the network of 192.0.2.10/24")
            && said.contains("using instead: host name lemur-hsm; DHCP"),
        "{said}"
    );
    assert_eq!(read(&run.join("lemur-appliance/hostname")), "lemur-hsm\n");
    assert!(read(&run.join("systemd/network/10-lemur.network")).contains("DHCP=yes"));
    assert!(
        read(&run.join("systemd/timesyncd.conf.d/lemur.conf")).contains("NTP=ntp.example.test\n")
    );
    // On the console's login screen too, until the seed is fixed.
    let warning = read(&warning_file(&run));
    assert!(
        warning.contains("hostname: \"lemur_hsm\" may hold only")
            && warning.contains("This boot uses instead: host name lemur-hsm; DHCP."),
        "{warning}"
    );
    std::fs::write(&seed, "hostname = \"lemur-hsm\"\n").unwrap();
    apply(&seed, &run);
    assert!(!warning_file(&run).exists());
}

#[test]
fn apply_seed_writes_a_static_network_remote_syslog_and_ssh_once() {
    let dir = scratch();
    let run = dir.path().join("run");
    let ca = certificate(true);
    let seed = seed_file(dir.path(), &full_seed(&ca));
    let applied = apply(&seed, &run);
    assert!(stderr(&applied).is_empty(), "{}", stderr(&applied));
    // The network first: an appliance that can be reached can be fixed.
    assert_eq!(
        stdout(&applied).lines().next(),
        Some(
            format!(
                "wrote {}",
                run.join("systemd/network/10-lemur.network").display()
            )
            .as_str()
        )
    );
    assert!(!warning_file(&run).exists());
    let network = read(&run.join("systemd/network/10-lemur.network"));
    assert!(
        network.contains(
            "Address=192.0.2.10/24\nGateway=192.0.2.1\nDNS=192.0.2.53\nDNS=2001:db8::53\n"
        ) && !network.contains("DHCP"),
        "{network}"
    );
    // On the interface the seed names alone, not on every one.
    assert!(
        network.contains("[Match]\nMACAddress=52:54:00:ab:cd:01\n") && !network.contains("Name="),
        "{network}"
    );
    assert!(
        read(&run.join("systemd/timesyncd.conf.d/lemur.conf"))
            .contains("[Time]\nNTP=ntp1.example.test 192.0.2.123\n")
    );
    let appliance = run.join("lemur-appliance");
    assert_eq!(mode_of(&appliance), 0o755);
    assert_eq!(read(&appliance.join("hostname")), "lemur.example.test\n");
    assert_eq!(
        read(&appliance.join("authorized_keys")),
        format!("{SSH_KEY}\n")
    );
    assert!(appliance.join("ssh-enabled").exists());
    // Port 22 opens with ssh, in the image's firewall as nft loads it.
    nft_accepts_the_images_firewall_with(&appliance);
    let ca_file = appliance.join("rsyslog-remote-ca.pem");
    assert_eq!(read(&ca_file).trim(), ca.trim());
    let drop_in = read(&appliance.join("rsyslog-remote.conf"));
    for wanted in [
        r#"target="logs.example.test" port="6514""#.to_owned(),
        r#"StreamDriverPermittedPeers="logs.example.test""#.to_owned(),
        format!(r#"StreamDriver.CAFile="{}""#, ca_file.display()),
    ] {
        assert!(drop_in.contains(&wanted), "{wanted} in\n{drop_in}");
    }
    // As the image includes it: optional, so that rsyslog starts without it.
    rsyslog_accepts_debians_configuration_with(&format!(
        "include(file=\"{}\" mode=\"optional\")",
        appliance.join("rsyslog-remote.conf").display()
    ));
    for file in walk(&run) {
        assert_eq!(mode_of(&file), 0o644, "{}", file.display());
    }

    // Every boot writes the same files again: nothing that did not change is touched.
    let before = modification_times(&run);
    let again = apply(&seed, &run);
    assert!(stdout(&again).is_empty(), "{}", stdout(&again));
    assert_eq!(modification_times(&run), before);

    // A seed without syslog and ssh takes their files away.
    std::fs::write(&seed, "hostname = \"lemur.example.test\"\n").unwrap();
    let removed = stdout(&apply(&seed, &run));
    for gone in [
        "rsyslog-remote.conf",
        "rsyslog-remote-ca.pem",
        "ssh-enabled",
        "authorized_keys",
        "firewall-ssh.nft",
    ] {
        assert!(!appliance.join(gone).exists(), "{gone}");
        assert!(removed.contains(&format!("removed {}", appliance.join(gone).display())));
    }
    nft_accepts_the_images_firewall_with(&appliance);
}

#[test]
fn hostile_seed_values_are_refused_and_inject_no_line() {
    let dir = scratch();
    let run = dir.path().join("run");
    let ca = certificate(true);
    // TOML escapes: each value holds a newline, a quote, a CR or an escape character once read.
    let seed = seed_file(
        dir.path(),
        &format!(
            r#"hostname = "lemur\nDNS=203.0.113.66"
[time]
ntp = ["ntp.example.test\n[Time]\nFallbackNTP=203.0.113.66", "ntp\".example.test"]
[syslog]
target = "logs.example.test"
name = "logs.example.test\" action(type=\"omfile\" file=\"/etc/shadow\")"
ca = """
{ca}"""
[ssh]
enabled = true
authorized_keys = [
    "{SSH_KEY}\r\ncommand=\"/bin/sh\" {SSH_KEY}",
    'command="/bin/sh" {SSH_KEY}',
    "{SSH_KEY} \u001b[2J",
]
"#
        ),
    );
    let said = stderr(&apply(&seed, &run));
    for field in [
        "hostname",
        "time.ntp[0]",
        "time.ntp[1]",
        "syslog.name",
        "ssh.authorized_keys[0]",
        "ssh.authorized_keys[1]",
        "ssh.authorized_keys[2]",
    ] {
        assert!(said.contains(&format!("{field}: ")), "{field} in\n{said}");
    }
    assert!(
        said.contains(
            "using instead: host name lemur-hsm; Debian's NTP pool; no remote syslog; ssh off"
        ),
        "{said}"
    );
    // Nothing of theirs reached a file a service reads: each part is its safe default.
    let warning = warning_file(&run);
    for file in walk(&run).into_iter().filter(|file| *file != warning) {
        let text = read(&file);
        for injected in ["203.0.113.66", "omfile", "/bin/sh", "FallbackNTP", "\u{1b}"] {
            assert!(!text.contains(injected), "{injected} in {}", file.display());
        }
    }
    assert_eq!(read(&run.join("lemur-appliance/hostname")), "lemur-hsm\n");
    for absent in [
        "rsyslog-remote.conf",
        "ssh-enabled",
        "authorized_keys",
        "firewall-ssh.nft",
    ] {
        assert!(
            !run.join("lemur-appliance").join(absent).exists(),
            "{absent}"
        );
    }
    // The console warning quotes them, on lines of its own, without a control character, and
    // with backslashes doubled so that agetty shows them as they are.
    let text = read(&warning);
    assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text}");
    assert!(
        text.contains(r#"hostname: "lemur\\nDNS=203.0.113.66""#),
        "{text}"
    );
    for line in text.lines().filter(|line| !line.is_empty()) {
        assert!(
            line.starts_with("  ") || line.starts_with("WARNING: "),
            "an injected line: {line:?} in\n{text}"
        );
    }
}

#[test]
fn an_expired_syslog_ca_turns_forwarding_off_and_says_so_at_every_boot() {
    let dir = scratch();
    let run = dir.path().join("run");
    let seed = seed_file(dir.path(), &full_seed(&super::expired_ca()));
    for _boot in 0..2 {
        let said = stderr(&apply(&seed, &run));
        assert!(
            said.contains("syslog.ca: ")
                && said.contains("expired")
                && said.contains("forwarding to the remote syslog server is OFF"),
            "{said}"
        );
        assert!(!run.join("lemur-appliance/rsyslog-remote.conf").exists());
        let warning = read(&warning_file(&run));
        assert!(
            warning.contains("forwarding to the remote syslog server is OFF")
                && warning.contains("no remote syslog"),
            "{warning}"
        );
    }
}

#[test]
fn apply_seed_goes_on_past_a_setting_it_cannot_write_and_then_fails() {
    let dir = scratch();
    let run = dir.path().join("run");
    let seed = seed_file(dir.path(), &full_seed(&certificate(true)));
    // Two settings that cannot be written: the time server file's directory is a file, and a
    // directory stands where the host name goes.
    std::fs::create_dir_all(run.join("systemd")).unwrap();
    std::fs::write(run.join("systemd/timesyncd.conf.d"), "in the way").unwrap();
    std::fs::create_dir_all(run.join("lemur-appliance/hostname/in-the-way")).unwrap();
    let applied = apply_unchecked(&seed, &run);
    let said = stderr(&applied);
    assert!(!applied.status.success(), "{said}");
    assert!(
        said.contains("timesyncd.conf.d")
            && said.contains("lemur-appliance/hostname")
            && said.contains("2 setting(s) could not be written"),
        "{said}"
    );
    // Everything else was written, the network first.
    assert!(read(&run.join("systemd/network/10-lemur.network")).contains("Address=192.0.2.10/24"));
    let appliance = run.join("lemur-appliance");
    assert_eq!(
        read(&appliance.join("authorized_keys")),
        format!("{SSH_KEY}\n")
    );
    assert!(read(&appliance.join("rsyslog-remote.conf")).contains("logs.example.test"));
    let warning = read(&warning_file(&run));
    assert!(
        warning.contains("could not be written")
            && warning.contains("timesyncd.conf.d")
            && warning.contains("lemur-appliance/hostname"),
        "{warning}"
    );
}

/// Each file under `dir` with its modification time.
fn modification_times(dir: &Path) -> Vec<(PathBuf, i64, i64)> {
    walk(dir)
        .into_iter()
        .map(|file| {
            let found = std::fs::metadata(&file).unwrap();
            (file, found.mtime(), found.mtime_nsec())
        })
        .collect()
}

/// The units that open the token, as `apply-seed` names their drop-ins under the run directory.
const TOKEN_UNITS: [&str; 3] = ["lemur", "lemur-entropy", "lemur-provision"];

#[test]
fn a_network_hsms_addresses_open_the_sandbox_of_each_unit_that_opens_the_token() {
    let dir = scratch();
    let run = dir.path().join("run");
    let module = lemur_hsm::resolve_module(None);
    let seed = seed_file(
        dir.path(),
        &format!(
            "[hsm]\nmodule = \"{}\"\ntoken = \"t\"\naddresses = [\"192.0.2.7\", \"2001:db8::/64\"]\n",
            module.display()
        ),
    );
    apply(&seed, &run);
    let drop_in =
        |unit: &str| run.join(format!("systemd/system/{unit}.service.d/50-lemur-hsm.conf"));
    for unit in TOKEN_UNITS {
        let text = read(&drop_in(unit));
        assert!(
            text.contains("Wants=network-online.target\nAfter=network-online.target\n")
                && text.contains("\n[Service]\n")
                && text.contains("IPAddressAllow=192.0.2.7/32 2001:db8::/64\n"),
            "{unit}: {text}"
        );
        // The daemon has the inet families and loopback already; the others no network.
        let opened =
            text.contains("PrivateNetwork=no\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n");
        assert_eq!(opened, unit != "lemur", "{unit}: {text}");
    }

    // A seed without them closes the sandboxes again at the next boot.
    std::fs::write(&seed, "hostname = \"lemur-hsm\"\n").unwrap();
    apply(&seed, &run);
    for unit in TOKEN_UNITS {
        assert!(!drop_in(unit).exists(), "{unit}");
    }
}
