//! `lemur appliance`: the seed file checked field by field ([`seed`]), the boot settings
//! `apply-seed` writes from it ([`apply`]), and first-boot provisioning end to end
//! ([`provision`]) as the image's units run it: root's credentials (the real `systemd-creds`, under
//! a host key of the test's own, so the machine's is never touched), provisioning as an
//! unprivileged user with those credentials decrypted into `$CREDENTIALS_DIRECTORY`, root's
//! console banner, and the daemon then started on what it made as systemd starts it.

mod apply;
mod provision;
mod seed;
mod trial;
mod upgrade;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The unprivileged user the daemon runs as when the tests run as root.
pub(super) const NOBODY: u32 = 65534;

/// An ed25519 public key, as `ssh-keygen` prints it.
pub(super) const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin@laptop";

/// `lemur ARGS` with `environment`, nothing of this process's SoftHSM2 or credentials.
pub(super) fn lemur(args: &[&str], environment: &[(&str, &Path)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lemur"))
        .args(args)
        .envs(environment.iter().map(|(name, value)| (*name, *value)))
        .env_remove("SOFTHSM2_CONF")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("LEMUR_LOG", "debug")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// What `output` printed on stdout.
pub(super) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What `output` printed on stderr.
pub(super) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A CA certificate (or, with `ca` false, a server's), as the remote syslog server's.
pub(super) fn certificate(ca: bool) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["logs.example.test".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Logs CA");
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    params.self_signed(&key).unwrap().pem()
}

/// A CA certificate for the remote syslog server that expired in 2021.
pub(super) fn expired_ca() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Old Logs CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    params.self_signed(&key).unwrap().pem()
}

/// A seed that sets everything.
pub(super) fn full_seed(ca: &str) -> String {
    format!(
        r#"# Mixed case: host names compare without it.
hostname = "Lemur.Example.Test"

[network]
mode = "static"
# Mixed case too.
interface = "52:54:00:AB:cd:01"
address = "192.0.2.10/24"
gateway = "192.0.2.1"
dns = ["192.0.2.53", "2001:db8::53"]

[time]
ntp = ["ntp1.example.test", "192.0.2.123"]

[syslog]
target = "logs.example.test:6514"
ca = """
{ca}"""

[admin]
email = "pki@example.test"

[ssh]
enabled = true
authorized_keys = ["{SSH_KEY}"]
"#
    )
}

/// Writes `text` as the seed in `dir`.
pub(super) fn seed_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("lemur-appliance.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The text of `path`.
pub(super) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir`.
pub(super) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}
