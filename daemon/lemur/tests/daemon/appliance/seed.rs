//! `lemur appliance seed check`: every problem of a seed named by its field.

use super::{SSH_KEY, certificate, full_seed, lemur, seed_file, stderr, stdout};
use crate::support::scratch;
use std::process::Output;

/// `lemur appliance seed check` on `text`.
fn check(text: &str) -> Output {
    let dir = scratch();
    let seed = seed_file(dir.path(), text);
    lemur(&["appliance", "seed", "check", seed.to_str().unwrap()], &[])
}

#[test]
fn a_good_seed_passes_the_check() {
    let checked = check(&full_seed(&certificate(true)));
    assert!(checked.status.success(), "{}", stderr(&checked));
    assert!(
        stdout(&checked).contains("no problems"),
        "{}",
        stdout(&checked)
    );
}

#[test]
fn the_check_names_each_bad_field_and_what_is_wrong() {
    let ca = certificate(true);
    let leaf = certificate(false);
    let static_network = "[network]\nmode = \"static\"\naddress = \"192.0.2.10/24\"\n";
    let cases: Vec<(String, &str, &str)> = vec![
        ("colour = \"blue\"".into(), "colour", "unknown key"),
        (
            "[network]\nmode = \"dhcp\"\ncolour = 1".into(),
            "network.colour",
            "unknown key",
        ),
        ("network = \"dhcp\"".into(), "network", "must be a table"),
        ("hostname = 5".into(), "hostname", "must be a string"),
        (
            "hostname = \"lemur_hsm\"".into(),
            "hostname",
            "only letters",
        ),
        ("hostname = \"-lemur\"".into(), "hostname", "hyphen"),
        (
            "hostname = \"lemur..test\"".into(),
            "hostname",
            "empty label",
        ),
        (
            format!("hostname = \"{}\"", "a".repeat(65)),
            "hostname",
            "more than 64",
        ),
        (
            "[network]\nmode = \"wifi\"".into(),
            "network.mode",
            "neither",
        ),
        (
            "[network]\nmode = \"static\"".into(),
            "network.address",
            "is missing",
        ),
        (
            "[network]\nmode = \"static\"\naddress = \"192.0.2.10\"".into(),
            "network.address",
            "prefix length",
        ),
        (
            "[network]\nmode = \"static\"\naddress = \"192.0.2.255/24\"".into(),
            "network.address",
            "broadcast",
        ),
        (
            format!("{static_network}gateway = \"198.51.100.1\""),
            "network.gateway",
            "outside the network",
        ),
        (
            format!("{static_network}dns = [\"dns.example.test\"]"),
            "network.dns[0]",
            "not an IP address",
        ),
        (
            "[network]\nmode = \"dhcp\"\naddress = \"192.0.2.10/24\"".into(),
            "network.address",
            "only for mode = \"static\"",
        ),
        (
            "[network]\nmode = \"dhcp\"\ninterface = \"eth0\"".into(),
            "network.interface",
            "only for mode = \"static\"",
        ),
        (
            format!("{static_network}interface = \"en*\""),
            "network.interface",
            "neither an interface name",
        ),
        (
            format!("{static_network}interface = \"52:54:00:zz:cd:01\""),
            "network.interface",
            "not a MAC address",
        ),
        ("[time]\nntp = []".into(), "time.ntp", "is empty"),
        (
            "[time]\nntp = \"pool.ntp.org\"".into(),
            "time.ntp",
            "list of strings",
        ),
        (
            "[time]\nntp = [\"bad host\"]".into(),
            "time.ntp[0]",
            "only letters",
        ),
        (
            format!("[syslog]\nca = \"\"\"\n{ca}\"\"\""),
            "syslog.target",
            "is missing",
        ),
        (
            format!("[syslog]\ntarget = \"logs.example.test:0\"\nca = \"\"\"\n{ca}\"\"\""),
            "syslog.target",
            "not a port number",
        ),
        (
            format!("[syslog]\ntarget = \"2001:db8::5:6514\"\nca = \"\"\"\n{ca}\"\"\""),
            "syslog.target",
            "brackets",
        ),
        (
            format!("[syslog]\ntarget = \"192.0.2.5:6514\"\nca = \"\"\"\n{ca}\"\"\""),
            "syslog.name",
            "IP address",
        ),
        (
            "[syslog]\ntarget = \"logs.example.test\"\nca = \"not a certificate\"".into(),
            "syslog.ca",
            "CERTIFICATE",
        ),
        (
            format!("[syslog]\ntarget = \"logs.example.test\"\nca = \"\"\"\n{leaf}\"\"\""),
            "syslog.ca",
            "not a CA certificate",
        ),
        (
            format!(
                "[syslog]\ntarget = \"logs.example.test\"\nca = \"\"\"\n{}\"\"\"",
                super::expired_ca()
            ),
            "syslog.ca",
            "expired",
        ),
        ("[admin]\nemail = \"admin\"".into(), "admin.email", "no @"),
        (
            "[admin]\nemail = \"admin@localhost\"".into(),
            "admin.email",
            "needs a dot",
        ),
        (
            "[ssh]\nenabled = \"yes\"".into(),
            "ssh.enabled",
            "true or false",
        ),
        (
            "[ssh]\nenabled = true".into(),
            "ssh.authorized_keys",
            "nobody could log in",
        ),
        (
            "[ssh]\nenabled = true\nauthorized_keys = [\"ssh-ed25519 AAAA\"]".into(),
            "ssh.authorized_keys[0]",
            "not a ssh-ed25519 key",
        ),
        (
            format!("[ssh]\nenabled = true\nauthorized_keys = ['from=\"10.0.0.1\" {SSH_KEY}']"),
            "ssh.authorized_keys[0]",
            "options",
        ),
        (
            "[ssh]\nenabled = true\nauthorized_keys = [\"ssh-dss AAAA\"]".into(),
            "ssh.authorized_keys[0]",
            "not a key type",
        ),
        (
            format!("[ssh]\nenabled = true\nauthorized_keys = [\"{SSH_KEY}\\u0007\"]"),
            "ssh.authorized_keys[0]",
            "control character",
        ),
        (
            "[hsm]\nmodule = \"/var/lib/lemur/vendor.so\"\ntoken = \"t\"".into(),
            "hsm.module",
            "not under /usr/",
        ),
        (
            "[hsm]\nmodule = \"/usr/lib/../../var/x.so\"\ntoken = \"t\"".into(),
            "hsm.module",
            "\"..\"",
        ),
        (
            "[hsm]\nmodule = \"/usr/lib/vendor/README\"\ntoken = \"t\"".into(),
            "hsm.module",
            "no shared object",
        ),
        (
            "[hsm]\nmodule = \"/usr/lib/vendor/libcryptoki.so\"".into(),
            "hsm.token",
            "is missing",
        ),
        (
            format!("[hsm]\nmodule = \"/usr/lib/v.so\"\ntoken = \"{}\"", "t".repeat(33)),
            "hsm.token",
            "more than a token label holds",
        ),
        (
            "[hsm]\nmodule = \"/usr/lib/v.so\"\ntoken = \"t\"\npin = \"12\\n34\"".into(),
            "hsm.pin",
            "control character",
        ),
        (
            "[hsm]\nmodule = \"/usr/lib/v.so\"\ntoken = \"t\"\nenvironment = { LD_PRELOAD = \"/x.so\" }".into(),
            "hsm.environment.LD_PRELOAD",
            "not by the module alone",
        ),
        (
            "[hsm]\nmodule = \"/usr/lib/v.so\"\ntoken = \"t\"\nenvironment = { CREDENTIALS_DIRECTORY = \"/tmp\" }".into(),
            "hsm.environment.CREDENTIALS_DIRECTORY",
            "not by the module alone",
        ),
        (
            "[hsm]\nmodule = \"/usr/lib/v.so\"\ntoken = \"t\"\nenvironment = { https_proxy = \"x\" }".into(),
            "hsm.environment.https_proxy",
            "not by the module alone",
        ),
        (
            "[hsm]\nmodule = \"/usr/lib/v.so\"\ntoken = \"t\"\nenvironment = { GLIBC_TUNABLES = \"x\" }".into(),
            "hsm.environment.GLIBC_TUNABLES",
            "not by the module alone",
        ),
        (
            "[hsm]\nmodule = \"/usr/lib/v.so\"\ntoken = \"t\"\nenvironment = \"X=1\"".into(),
            "hsm.environment",
            "table of strings",
        ),
        (
            "[hsm]\nmodule = \"/usr/lib/v.so\"\ntoken = \"t\"\naddresses = [\"hsm.example\"]".into(),
            "hsm.addresses[0]",
            "neither an IP address nor a network",
        ),
    ];
    for (seed, field, reason) in cases {
        let checked = check(&seed);
        let said = stdout(&checked);
        assert_eq!(checked.status.code(), Some(1), "{seed}: {said}");
        assert!(
            said.lines()
                .any(|line| line.starts_with(&format!("{field}: ")) && line.contains(reason)),
            "{seed}\nwanted {field}: ...{reason}..., got:\n{said}"
        );
    }
}

#[test]
fn the_check_reports_every_problem_at_once_and_where_toml_breaks() {
    let checked = check(
        "hostname = \"lemur_hsm\"\n[network]\nmode = \"static\"\naddress = \"192.0.2.10/24\"\n\
         gateway = \"10.0.0.1\"\ndns = [\"x\", 1]\n[ssh]\nenabled = 1\n",
    );
    let said = stdout(&checked);
    let fields: Vec<&str> = said
        .lines()
        .filter_map(|line| line.split(": ").next())
        .collect();
    assert_eq!(
        fields,
        [
            "hostname",
            "network.dns[0]",
            "network.dns[1]",
            "network.gateway",
            "ssh.enabled"
        ],
        "{said}"
    );
    assert!(
        stderr(&checked).contains("host name lemur-hsm; DHCP; ssh off"),
        "{}",
        stderr(&checked)
    );
    let wrong_hsm = check("[hsm]\nmodule = \"/tmp/v.so\"\ntoken = \"t\"\npin = \"secret-pin-1\"\n");
    assert!(
        stderr(&wrong_hsm).contains("no HSM: provisioning waits for a seed whose [hsm] is right"),
        "{}",
        stderr(&wrong_hsm)
    );
    let said = format!("{}{}", stdout(&wrong_hsm), stderr(&wrong_hsm));
    assert!(!said.contains("secret-pin-1"), "{said}");
    let not_a_table = check("hsm = \"softhsm\"\n");
    assert!(
        stderr(&not_a_table).contains("no HSM: provisioning waits"),
        "{}",
        stderr(&not_a_table)
    );
    let broken = check("hostname = \"lemur\"\n[network\nmode = \"dhcp\"\n");
    assert_eq!(broken.status.code(), Some(1));
    // A seed that does not read says nothing of the HSM either: none, not SoftHSM2.
    assert!(
        stderr(&broken).contains("no HSM: provisioning waits"),
        "{}",
        stderr(&broken)
    );
    assert!(
        stdout(&broken).contains("file: TOML syntax error at line 2, column"),
        "{}",
        stdout(&broken)
    );
}
