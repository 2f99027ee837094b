//! The operator commands: `create_config`, `init` (twice), `create_user`, `create_role`,
//! `reset_password`, and what `start` refuses.

use crate::support::{lemur_hsm, scratch};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A configuration made by `lemur create_config`, with a SoftHSM2 token initialised by
/// `lemur-hsm init-token` using the PIN file it wrote.
struct Installation {
    dir: tempfile::TempDir,
}

impl Installation {
    fn new() -> Self {
        let dir = scratch();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let installation = Self { dir };
        let created = installation.lemur(&[
            "create_config",
            "--state-dir",
            installation.state().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ]);
        assert!(created.status.success(), "{}", text(&created));
        let tokens = installation.dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        std::fs::write(
            installation.softhsm_conf(),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\n",
                tokens.display()
            ),
        )
        .unwrap();
        std::fs::write(installation.dir.path().join("so-pin"), "so-pin-0042\n").unwrap();
        let token = Command::new(lemur_hsm())
            .env("SOFTHSM2_CONF", installation.softhsm_conf())
            .args(["--token", "lemur", "--pin-file"])
            .arg(installation.state().join("secrets/hsm-pin"))
            .args(["init-token", "--so-pin-file"])
            .arg(installation.dir.path().join("so-pin"))
            .output()
            .unwrap();
        assert!(token.status.success(), "{}", text(&token));
        installation
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("lemur.toml")
    }

    fn softhsm_conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    fn password_file(&self, name: &str, password: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("{password}\n")).unwrap();
        path
    }

    fn lemur(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_lemur"))
            .env("LEMUR_CONF", self.config())
            .env("SOFTHSM2_CONF", self.softhsm_conf())
            .env("LEMUR_LOG", "warn")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn create_config_writes_private_files_and_never_overwrites() {
    let installation = Installation::new();
    assert_eq!(mode(&installation.config()), 0o600);
    assert_eq!(mode(&installation.state().join("secrets")), 0o700);
    for secret in ["token-secret", "hsm-pin"] {
        assert_eq!(
            mode(&installation.state().join("secrets").join(secret)),
            0o600,
            "{secret}"
        );
    }
    let config = std::fs::read_to_string(installation.config()).unwrap();
    assert!(config.contains("version = 1") && config.contains("pin_file"));
    let secret =
        std::fs::read_to_string(installation.state().join("secrets/token-secret")).unwrap();
    assert!(
        !config.contains(secret.trim()),
        "secrets stay out of the configuration"
    );
    let again = installation.lemur(&[
        "create_config",
        "--state-dir",
        installation.state().to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(text(&again).contains("exists"), "{}", text(&again));
}

#[test]
fn init_is_safe_to_run_twice_and_users_can_be_managed() {
    let installation = Installation::new();
    let admin = installation.password_file("admin-password", "correct horse battery staple");
    let first = installation.lemur(&["init", "--password-file", admin.to_str().unwrap()]);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("created the admin user"),
        "{}",
        text(&first)
    );
    let second = installation.lemur(&["init", "--password-file", admin.to_str().unwrap()]);
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        !text(&second).contains("created the admin user"),
        "{}",
        text(&second)
    );

    let bob = installation.password_file("bob-password", "bob's long password");
    let created = installation.lemur(&[
        "create_user",
        "-u",
        "bob",
        "-e",
        "bob@example.com",
        "-r",
        "read-only",
        "-p",
        bob.to_str().unwrap(),
    ]);
    assert!(created.status.success(), "{}", text(&created));
    let duplicate = installation.lemur(&[
        "create_user",
        "-u",
        "bob",
        "-e",
        "other@example.com",
        "-p",
        bob.to_str().unwrap(),
    ]);
    assert!(!duplicate.status.success());
    let unknown_role = installation.lemur(&[
        "create_user",
        "-u",
        "eve",
        "-e",
        "eve@example.com",
        "-r",
        "no-such-role",
        "-p",
        bob.to_str().unwrap(),
    ]);
    assert!(
        text(&unknown_role).contains("no-such-role"),
        "{}",
        text(&unknown_role)
    );
    let short = installation.password_file("short", "short");
    let weak = installation.lemur(&["reset_password", "-u", "bob", "-p", short.to_str().unwrap()]);
    assert!(text(&weak).contains("at least 12"), "{}", text(&weak));
    let reset = installation.lemur(&["reset_password", "-u", "bob", "-p", admin.to_str().unwrap()]);
    assert!(reset.status.success(), "{}", text(&reset));
    let role = installation.lemur(&[
        "create_role",
        "-n",
        "team-web",
        "-u",
        "bob",
        "-d",
        "Web team",
    ]);
    assert!(role.status.success(), "{}", text(&role));
    let no_prompt = installation.lemur(&["reset_password", "-u", "bob"]);
    assert!(
        text(&no_prompt).contains("--password-file"),
        "{}",
        text(&no_prompt)
    );
}

#[test]
fn start_refuses_readable_secrets_then_root() {
    let installation = Installation::new();
    let admin = installation.password_file("admin-password", "correct horse battery staple");
    assert!(
        installation
            .lemur(&["init", "-p", admin.to_str().unwrap()])
            .status
            .success()
    );
    let pin = installation.state().join("secrets/hsm-pin");
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o644)).unwrap();
    let readable = installation.lemur(&["start"]);
    assert!(!readable.status.success());
    let message = text(&readable);
    assert!(
        message.contains(pin.to_str().unwrap()) && message.contains("chmod 600"),
        "{message}"
    );
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A PKCS#11 module others could replace is code they could run inside the daemon.
    let module = installation.dir.path().join("module.so");
    std::fs::copy(lemur_hsm::resolve_module(None), &module).unwrap();
    std::fs::set_permissions(&module, std::fs::Permissions::from_mode(0o666)).unwrap();
    let config = std::fs::read_to_string(installation.config()).unwrap();
    let with_module = config.replace(
        "token = \"lemur\"",
        &format!(
            "module = {:?}\ntoken = \"lemur\"",
            module.display().to_string()
        ),
    );
    std::fs::write(installation.config(), with_module).unwrap();
    let writable = installation.lemur(&["start"]);
    assert!(!writable.status.success());
    assert!(
        text(&writable).contains("module.so") && text(&writable).contains("go-w"),
        "{}",
        text(&writable)
    );
    std::fs::write(installation.config(), config).unwrap();
    let as_root = installation.lemur(&["start"]);
    if std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    {
        assert!(!as_root.status.success());
        assert!(
            text(&as_root).contains("refuses to run as root"),
            "{}",
            text(&as_root)
        );
    }
}

#[test]
fn a_bad_configuration_names_the_key() {
    let installation = Installation::new();
    let config = std::fs::read_to_string(installation.config())
        .unwrap()
        .replace("max_connections", "max_conections");
    std::fs::write(installation.config(), config).unwrap();
    let failed = installation.lemur(&["init", "-p", "/dev/null"]);
    assert!(!failed.status.success());
    assert!(
        text(&failed).contains("max_conections"),
        "{}",
        text(&failed)
    );
}
