//! `lemur appliance provision` end to end, and the daemon on what it made.

use super::{NOBODY, certificate, full_seed, lemur, read, seed_file, stderr, stdout, walk};
use crate::support::{Response, curl, mode_of, scratch, sqlite_query_at, verify_with_openssl};
use lemur_testkit::openssl;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The credentials the image's units load, as lemur-provision.service lists them.
const CREDENTIALS: [&str; 4] = ["hsm-pin", "hsm-so-pin", "token-secret", "admin-password"];

/// An appliance's boots in a scratch directory: the seed, and where each unit writes.
struct FirstBoot {
    dir: tempfile::TempDir,
    seed: PathBuf,
}

impl FirstBoot {
    fn new() -> Self {
        let dir = scratch();
        // The daemon's user must reach its state directory below this one.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let seed = seed_file(dir.path(), &full_seed(&certificate(true)));
        // As systemd-tmpfiles and StateDirectory= leave them: the daemon's user's.
        for (name, mode) in [("run", 0o755), ("state", 0o700)] {
            let made = dir.path().join(name);
            std::fs::create_dir(&made).unwrap();
            std::fs::set_permissions(&made, std::fs::Permissions::from_mode(mode)).unwrap();
            if lemur_testkit::is_root() {
                std::os::unix::fs::chown(&made, Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        Self { dir, seed }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn state(&self) -> PathBuf {
        self.path("state")
    }

    fn credstore(&self) -> PathBuf {
        self.path("credstore")
    }

    fn issue_file(&self) -> PathBuf {
        self.path("issue.d/50-lemur.issue")
    }

    fn socket(&self) -> PathBuf {
        self.path("run/lemur.sock")
    }

    /// systemd-creds' host key: the test's own.
    fn host_key(&self) -> PathBuf {
        self.path("credential.secret")
    }

    /// A boot: lemur-credentials.service, lemur-provision.service with its banner; each must
    /// succeed. Returns what each said.
    fn boot(&self) -> Vec<Output> {
        let credentials = self.credentials();
        assert!(credentials.status.success(), "{}", stderr(&credentials));
        let provisioned = self.provision();
        assert!(
            provisioned.status.success(),
            "{}{}",
            stdout(&provisioned),
            stderr(&provisioned)
        );
        let banner = self.banner();
        assert!(banner.status.success(), "{}", stderr(&banner));
        vec![credentials, provisioned, banner]
    }

    /// `lemur appliance credentials`, as lemur-credentials.service runs it (as root when the
    /// tests are).
    fn credentials(&self) -> Output {
        lemur(
            &[
                "appliance",
                "credentials",
                "--credstore",
                self.credstore().to_str().unwrap(),
                "--token-dir",
                self.state().join("softhsm/tokens").to_str().unwrap(),
                "--seed",
                self.seed.to_str().unwrap(),
            ],
            &[("SYSTEMD_CREDENTIAL_SECRET", &self.host_key())],
        )
    }

    /// `lemur appliance provision`, as lemur-provision.service runs it: as the daemon's user
    /// (nobody, when the tests run as root), with the credentials and the seed decrypted into
    /// `$CREDENTIALS_DIRECTORY`.
    fn provision(&self) -> Output {
        let credentials = self.credentials_directory(&CREDENTIALS);
        let mut command = Command::new(env!("CARGO_BIN_EXE_lemur"));
        command
            .args(["appliance", "provision", "--seed"])
            .arg(credentials.join("seed"))
            .arg("--state-dir")
            .arg(self.state())
            .arg("--listen")
            .arg(format!("unix:{}", self.socket().display()))
            .arg("--on-trial")
            .arg(self.path("on-trial"))
            .env("CREDENTIALS_DIRECTORY", &credentials)
            .env_remove("SOFTHSM2_CONF")
            .env_remove("SYSTEMD_CREDENTIAL_SECRET")
            .env("LEMUR_LOG", "debug")
            .stdin(Stdio::null());
        if lemur_testkit::is_root() {
            // What User=lemur does: another uid, gid and no supplementary group.
            command.uid(NOBODY).gid(NOBODY);
        }
        command.output().unwrap()
    }

    /// `lemur appliance banner`, as root, as lemur-provision.service's ExecStartPost=+ runs it.
    fn banner(&self) -> Output {
        lemur(
            &[
                "appliance",
                "banner",
                "--state-dir",
                self.state().to_str().unwrap(),
                "--credstore",
                self.credstore().to_str().unwrap(),
                "--issue-file",
                self.issue_file().to_str().unwrap(),
            ],
            &[("SYSTEMD_CREDENTIAL_SECRET", &self.host_key())],
        )
    }

    /// The credential `name`, decrypted as systemd does for the unit.
    fn decrypt(&self, name: &str) -> String {
        let output = Command::new("systemd-creds")
            .env("SYSTEMD_CREDENTIAL_SECRET", self.host_key())
            .arg("decrypt")
            .arg(format!("--name={name}"))
            .arg(self.credstore().join(format!("lemur.{name}")))
            .arg("-")
            .output()
            .expect("systemd-creds (Debian package systemd)");
        assert!(output.status.success(), "{}", stderr(&output));
        String::from_utf8(output.stdout).unwrap()
    }

    /// A credentials directory as systemd makes one for a unit with `LoadCredentialEncrypted=`
    /// lines for `names` (and, for provisioning, `LoadCredential=seed:`): the unit user's,
    /// closed to others; made afresh, as at every start.
    fn credentials_directory(&self, names: &[&str]) -> PathBuf {
        let dir = self.path("credentials");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut files: Vec<(PathBuf, Vec<u8>)> = names
            .iter()
            .map(|name| (dir.join(name), self.decrypt(name).into_bytes()))
            .collect();
        files.push((dir.join("seed"), std::fs::read(&self.seed).unwrap()));
        for (file, content) in files {
            std::fs::write(&file, content).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
            if lemur_testkit::is_root() {
                std::os::unix::fs::chown(&file, Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        if lemur_testkit::is_root() {
            std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        dir
    }

    /// `lemur start` on the state, as lemur.service runs it; returns once it is ready.
    fn start(&self) -> Running {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lemur"));
        command
            .arg("start")
            .env("LEMUR_CONF", self.state().join("lemur.toml"))
            .env(
                "CREDENTIALS_DIRECTORY",
                self.credentials_directory(&["hsm-pin", "token-secret"]),
            )
            .env("LEMUR_LOG", "debug")
            .env_remove("SOFTHSM2_CONF")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if lemur_testkit::is_root() {
            command.uid(NOBODY).gid(NOBODY);
        }
        let mut child = command.spawn().unwrap();
        let (lines, heard) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = lines.send(line);
                }
            });
        }
        let mut daemon = Running {
            child,
            heard,
            said: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !daemon.said.iter().any(|line| line.contains("listening on")) {
            let left = deadline.saturating_duration_since(Instant::now());
            match daemon.heard.recv_timeout(left) {
                Ok(line) => daemon.said.push(line),
                Err(_) => panic!("the daemon did not become ready: {:#?}", daemon.said),
            }
        }
        daemon
    }

    /// A request to the daemon on its socket.
    fn request(&self, arguments: &[&str]) -> Response {
        let socket = self.socket();
        let mut all = vec!["--unix-socket", socket.to_str().unwrap()];
        all.extend_from_slice(arguments);
        curl(&all)
    }

    /// What a second run must leave as it was: every file's mode, owner and bytes, but the
    /// database's and the token's, which SQLite and SoftHSM2 rewrite on every open and login
    /// (those are compared by what they hold); and the inventory's rows.
    fn snapshot(&self) -> BTreeMap<String, String> {
        let mut files = BTreeMap::new();
        for file in walk(self.dir.path()) {
            let name = file
                .strip_prefix(self.dir.path())
                .unwrap()
                .display()
                .to_string();
            if name.starts_with("credentials/") || name.starts_with("run/") {
                continue;
            }
            let found = std::fs::metadata(&file).unwrap();
            // SQLite's write-ahead log and its index come and go with connections, and what
            // they hold is read below; but they belong to whoever owns the database.
            if name.ends_with(".db-wal") || name.ends_with(".db-shm") {
                let database = std::fs::metadata(self.state().join("lemur.db")).unwrap();
                assert_eq!(
                    (found.uid(), found.gid()),
                    (database.uid(), database.gid()),
                    "{name}"
                );
                continue;
            }
            let opaque = name.starts_with("state/lemur.db") || name.contains("/tokens/");
            let bytes = if opaque {
                String::new()
            } else {
                String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned()
            };
            files.insert(
                name,
                format!(
                    "{:o} {}:{} {bytes}",
                    found.mode() & 0o7777,
                    found.uid(),
                    found.gid()
                ),
            );
        }
        for sql in [
            "SELECT id, name, key_uri, crl_url FROM authorities",
            "SELECT id, body, status FROM certificates",
            "SELECT username, email, password_hash FROM users",
            "SELECT name FROM roles ORDER BY name",
            "SELECT count(*) FROM logs",
        ] {
            files.insert(
                sql.to_owned(),
                sqlite_query_at(&self.state().join("lemur.db"), sql),
            );
        }
        files
    }
}

/// A daemon started by the test, and what it said.
struct Running {
    child: Child,
    heard: std::sync::mpsc::Receiver<String>,
    said: Vec<String>,
}

impl Running {
    /// Stops the daemon with SIGTERM, as systemd does, waits for it, and returns all it said.
    fn stop(mut self) -> Vec<String> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the daemon did not stop");
            std::thread::park_timeout(Duration::from_millis(50));
        };
        self.said.extend(self.heard.try_iter());
        assert!(
            status.success(),
            "the daemon exited with {status}: {:?}",
            self.said
        );
        self.said
    }
}

#[test]
fn provision_makes_an_appliance_the_daemon_serves_and_a_second_boot_changes_nothing() {
    let boot = FirstBoot::new();
    let first = boot.boot();
    let password = boot.decrypt("admin-password");
    assert_eq!(password.len(), 32);
    let secrets = credentials_alone_hold_the_secrets(&boot);
    the_state_is_the_daemons_and_the_banner_roots(&boot);
    the_banner_shows_the_way_in(&boot, &password);
    let daemon_said = the_daemon_serves_it(&boot, &password);
    nginx_certificate_chains_to_the_appliance_ca(&boot);

    // A second boot finds everything done and changes nothing.
    let before = boot.snapshot();
    let second = boot.boot();
    assert_eq!(boot.snapshot(), before);
    for output in &second {
        let said = stdout(output);
        assert!(
            !said.contains("created") && !said.contains("wrote"),
            "{said}"
        );
    }

    // No secret in what the commands said.
    let everything_said = first
        .iter()
        .chain(&second)
        .map(|output| format!("{}{}", stdout(output), stderr(output)))
        .chain(daemon_said)
        .collect::<Vec<_>>()
        .join("\n");
    for secret in &secrets {
        assert!(
            !everything_said.contains(secret.as_str()),
            "a secret was printed:\n{everything_said}"
        );
    }

    the_admin_is_made_once_and_its_password_shown_while_it_is_the_first(&boot, &password);
    an_upgraded_appliance_gains_what_this_release_configures(&boot);
}

/// A configuration an earlier release wrote, without the key stock and root's backup service,
/// gains both at the next boot, once, but not while a release is on trial; the rest of it stays
/// as it was, and a key an operator removes afterwards stays removed.
fn an_upgraded_appliance_gains_what_this_release_configures(boot: &FirstBoot) {
    let path = boot.state().join("lemur.toml");
    let current = read(&path);
    assert!(current.contains("stock = { RSA2048 = 1024 }"), "{current}");
    let backups = "[backups]\nsocket = \"/run/lemur-backup.sock\"\nrestore_socket = \"/run/lemur-restore.sock\"\nrestore_status = \"/var/lib/lemur-restore/status.json\"\n";
    assert!(current.contains(backups), "{current}");
    let earlier = current
        .replace("stock = { RSA2048 = 1024 }\n", "")
        .replace(backups, "");
    std::fs::write(&path, &earlier).unwrap();
    std::fs::remove_file(boot.state().join("config-additions")).unwrap();
    // On trial: as it was.
    std::fs::write(boot.path("on-trial"), "b 0.2.0\n").unwrap();
    let on_trial = boot.boot();
    assert!(
        stdout(&on_trial[1]).contains("on trial"),
        "{}",
        stdout(&on_trial[1])
    );
    assert_eq!(read(&path), earlier);
    std::fs::remove_file(boot.path("on-trial")).unwrap();

    let upgraded = boot.boot();
    let said = stdout(&upgraded[1]);
    assert!(said.contains("added keys.stock, backups"), "{said}");
    let updated = read(&path);
    assert!(updated.starts_with(earlier.split("[keys]").next().unwrap()));
    assert!(updated.contains("stock = { RSA2048 = 1024 }"), "{updated}");
    assert!(updated.contains(backups), "{updated}");
    assert_eq!(mode_of(&path), 0o600);
    let before = boot.snapshot();
    boot.boot();
    assert_eq!(boot.snapshot(), before, "a second pass changes nothing");

    // Removed by an operator: stays removed.
    std::fs::write(&path, updated.replace(backups, "")).unwrap();
    boot.boot();
    assert!(!read(&path).contains("[backups]"));
}

/// The secrets exist only as encrypted credentials, root's: no file holds one in clear but the
/// console banner (the admin's first password) and the credentials directory systemd makes.
/// The configuration names them as credentials. Returns them, decrypted.
fn credentials_alone_hold_the_secrets(boot: &FirstBoot) -> Vec<String> {
    assert_eq!(mode_of(&boot.credstore()), 0o700);
    let secrets: Vec<String> = CREDENTIALS
        .iter()
        .map(|name| {
            let file = boot.credstore().join(format!("lemur.{name}"));
            assert_eq!(mode_of(&file), 0o600, "{name}");
            let secret = boot.decrypt(name);
            assert!(secret.len() >= 24, "{name}");
            secret
        })
        .collect();
    for file in walk(boot.dir.path()) {
        if file.starts_with(boot.path("credentials")) || file == boot.issue_file() {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{}", file.display());
        }
    }
    let config = read(&boot.state().join("lemur.toml"));
    for (key, credential) in [
        ("pin_file", "hsm-pin"),
        ("token_secret_file", "token-secret"),
    ] {
        assert!(
            config.contains(&format!("{key} = \"$CREDENTIALS_DIRECTORY/{credential}\"")),
            "{config}"
        );
    }
    assert!(config.contains("security_team_email = \"pki@example.test\""));
    assert!(config.contains("names = [\"lemur.example.test\", \"192.0.2.10\"]"));
    secrets
}

/// Everything in the state directory is the daemon's user's, made by that user (provisioning
/// runs as it: nothing was handed over by root); the banner is root's alone.
fn the_state_is_the_daemons_and_the_banner_roots(boot: &FirstBoot) {
    let daemon_uid = if lemur_testkit::is_root() {
        NOBODY
    } else {
        std::fs::metadata(boot.dir.path()).unwrap().uid()
    };
    for file in walk(&boot.state()) {
        let owner = std::fs::metadata(&file).unwrap().uid();
        assert_eq!(owner, daemon_uid, "{}", file.display());
    }
    assert_eq!(mode_of(&boot.issue_file()), 0o600);
    let owner = std::fs::metadata(boot.issue_file()).unwrap().uid();
    assert_eq!(owner, std::fs::metadata(boot.dir.path()).unwrap().uid());
}

/// An admin account an operator removed is not made again; the console stops showing the first
/// password once it no longer opens the account, and does not show it again.
fn the_admin_is_made_once_and_its_password_shown_while_it_is_the_first(
    boot: &FirstBoot,
    password: &str,
) {
    let database = boot.state().join("lemur.db");
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute(\"DELETE FROM users WHERE username = 'lemur'\")\nc.commit()";
    let deleted = Command::new("python3")
        .args(["-c", script])
        .arg(&database)
        .output()
        .unwrap();
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    let third = boot.boot();
    let said = stdout(&third[1]);
    assert!(!said.contains("created the admin user"), "{said}");
    assert_eq!(
        sqlite_query_at(
            &database,
            "SELECT count(*) FROM users WHERE username = 'lemur'"
        ),
        "0\n"
    );
    assert!(said.contains("no longer in use"), "{said}");
    let banner = read(&boot.issue_file());
    assert!(
        !banner.contains(password) && banner.contains("changed since the first boot; not shown"),
        "{banner}"
    );
    assert!(banner.contains("https://lemur.example.test/"), "{banner}");
}

#[test]
fn provisioning_refuses_root() {
    if !lemur_testkit::is_root() {
        eprintln!("skipped provisioning_refuses_root: the tests do not run as root");
        return;
    }
    let boot = FirstBoot::new();
    assert!(boot.credentials().status.success());
    let refused = lemur(
        &[
            "appliance",
            "provision",
            "--seed",
            boot.seed.to_str().unwrap(),
            "--state-dir",
            boot.state().to_str().unwrap(),
        ],
        &[(
            "CREDENTIALS_DIRECTORY",
            &boot.credentials_directory(&CREDENTIALS),
        )],
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("runs as the daemon's user"),
        "{}",
        stderr(&refused)
    );
    assert!(
        walk(&boot.state()).is_empty(),
        "root wrote the daemon's state"
    );
}

#[test]
fn a_lost_pin_credential_is_never_made_again_while_the_token_may_exist() {
    let boot = FirstBoot::new();
    // A token as SoftHSM2 keeps it: a directory of its own in the token directory.
    let token = boot.state().join("softhsm/tokens/0b6f-token");
    std::fs::create_dir_all(&token).unwrap();
    let failed = boot.credentials();
    let said = stderr(&failed);
    assert!(!failed.status.success(), "{said}");
    for pin in ["lemur.hsm-pin", "lemur.hsm-so-pin"] {
        assert!(!boot.credstore().join(pin).exists(), "{pin} was made");
        assert!(said.contains(pin), "{pin} in\n{said}");
    }
    assert!(
        said.contains("may exist")
            && said.contains(&format!("Restore {}", boot.credstore().display()))
            && said.contains("/var/lib/systemd/credential.secret")
            && said.contains("same TPM"),
        "{said}"
    );
    // What the token does not hold is made: nothing of it is lost.
    for made in ["lemur.token-secret", "lemur.admin-password"] {
        assert!(boot.credstore().join(made).exists(), "{made}");
    }
    // Without a token, the PINs are made.
    std::fs::remove_dir(&token).unwrap();
    let made = boot.credentials();
    assert!(made.status.success(), "{}", stderr(&made));
    assert!(boot.credstore().join("lemur.hsm-pin").exists());

    // A credential that no longer decrypts (another machine's key) is reported, and kept.
    let sealed = boot.credstore().join("lemur.token-secret");
    std::fs::write(&sealed, b"not what systemd-creds wrote").unwrap();
    let failed = boot.credentials();
    let said = stderr(&failed);
    assert!(!failed.status.success(), "{said}");
    assert!(
        said.contains("lemur.token-secret") && said.contains("does not open it"),
        "{said}"
    );
    assert_eq!(read(&sealed), "not what systemd-creds wrote");
}

#[test]
fn the_banner_takes_nothing_from_the_daemons_side_but_strict_facts() {
    let boot = FirstBoot::new();
    assert!(boot.credentials().status.success());
    let password = boot.decrypt("admin-password");
    let facts = boot.state().join("banner-facts");
    let fingerprint = ["AB"; 32].join(":");
    let shown_for = |content: &str| {
        let _ = std::fs::remove_file(&facts);
        std::fs::write(&facts, content).unwrap();
        let output = boot.banner();
        (output, read(&boot.issue_file()))
    };
    let (good, banner) = shown_for(&format!(
        "url=https://lemur.example.test/\nfingerprint={fingerprint}\n"
    ));
    assert!(good.status.success(), "{}", stderr(&good));
    assert!(
        banner.contains(&password) && banner.contains(&fingerprint),
        "{banner}"
    );

    for hostile in [
        format!("url=https://lemur.example.test/\\e[2J\nfingerprint={fingerprint}\n"),
        format!("url=https://lemur.example.test/\nfingerprint={fingerprint}\nPassword x\n"),
        "url=https://lemur.example.test/\nfingerprint=AB:CD\n".to_owned(),
    ] {
        let (refused, banner) = shown_for(&hostile);
        assert!(!refused.status.success(), "{hostile}");
        assert!(
            !banner.contains(&password) && banner.contains("journalctl -b -u lemur-provision"),
            "{hostile}: {banner}"
        );
        assert!(!stderr(&refused).contains("\\e[2J"), "{}", stderr(&refused));
    }

    // A link to a file the daemon's user may not read, and a FIFO that would block: refused.
    let _ = std::fs::remove_file(&facts);
    std::os::unix::fs::symlink(boot.host_key(), &facts).unwrap();
    let refused = boot.banner();
    assert!(!refused.status.success());
    assert!(!read(&boot.issue_file()).contains(&password));
    std::fs::remove_file(&facts).unwrap();
    let fifo = Command::new("mkfifo").arg(&facts).status().unwrap();
    assert!(fifo.success());
    let refused = boot.banner();
    assert!(
        !refused.status.success() && stderr(&refused).contains("not a regular file"),
        "{}",
        stderr(&refused)
    );
}

/// The console banner says where to go, what CA to trust, and how to log in.
fn the_banner_shows_the_way_in(boot: &FirstBoot, password: &str) {
    let fingerprint = openssl(
        &[
            "x509",
            "-in",
            "appliance-ca.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
        &boot.state(),
    );
    let fingerprint = fingerprint.trim().rsplit('=').next().unwrap().to_owned();
    let banner = read(&boot.issue_file());
    for wanted in [
        "https://lemur.example.test/",
        fingerprint.as_str(),
        "Administrator   lemur",
        password,
    ] {
        assert!(banner.contains(wanted), "{wanted} in\n{banner}");
    }
}

/// The daemon starts on the state as systemd starts it and is ready; the password logs in, and
/// the appliance CA is there with its CRL on the host name. Returns all the daemon said.
fn the_daemon_serves_it(boot: &FirstBoot, password: &str) -> Vec<String> {
    let daemon = boot.start();
    let health = boot.request(&["http://lemur/api/1/healthcheck"]);
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    let login = boot.request(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &serde_json::json!({ "username": "lemur", "password": password }).to_string(),
        "http://lemur/api/1/auth/login",
    ]);
    assert_eq!(login.status, 200, "{}", login.body);
    let token = login.json()["token"].as_str().unwrap().to_owned();
    let authorities = boot.request(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        "http://lemur/api/1/authorities",
    ]);
    assert_eq!(authorities.status, 200, "{}", authorities.body);
    let appliance = authorities.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|authority| authority["name"] == "appliance")
        .cloned()
        .unwrap_or_else(|| panic!("no authority appliance: {}", authorities.body));
    let root = read(&boot.state().join("appliance-ca.pem"));
    assert_eq!(
        appliance["authorityCertificate"]["body"]
            .as_str()
            .map(str::trim),
        Some(root.trim())
    );
    assert_eq!(
        appliance["crlUrl"],
        "http://lemur.example.test/crl/appliance.crl"
    );
    daemon.stop()
}

/// nginx's certificate chains to the appliance CA (openssl verify), for the appliance's names,
/// naming the CA's CRL; its key is private.
fn nginx_certificate_chains_to_the_appliance_ca(boot: &FirstBoot) {
    let chain = read(&boot.state().join("frontend/chain.pem"));
    let end =
        chain.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----\n".len();
    let (leaf, rest) = chain.split_at(end);
    assert_eq!(
        rest.trim(),
        read(&boot.state().join("appliance-ca.pem")).trim()
    );
    verify_with_openssl(leaf, rest);
    let scratch = scratch();
    std::fs::write(scratch.path().join("leaf.pem"), leaf).unwrap();
    let text = openssl(
        &["x509", "-in", "leaf.pem", "-noout", "-text"],
        scratch.path(),
    );
    for wanted in [
        "DNS:lemur.example.test",
        "IP Address:192.0.2.10",
        "URI:http://lemur.example.test/crl/appliance.crl",
    ] {
        assert!(text.contains(wanted), "{wanted} in {text}");
    }
    assert_eq!(mode_of(&boot.state().join("frontend/key.pem")), 0o600);
}

/// `lemur backup` and `lemur restore` as `lemur appliance backup` and `restore` run them: as
/// root, the daemon's user (nobody here) reading and writing the state, root the credentials.
/// A backup taken while the daemon runs is restored onto the same paths freshly provisioned
/// under another host key (a freshly flashed appliance): the daemon then serves the first
/// appliance's CA and takes its admin password. A damaged archive restores nothing and leaves
/// the fresh appliance as it was. Root only (switching users).
#[test]
fn an_appliance_backup_restores_onto_a_freshly_provisioned_one() {
    if !lemur_testkit::is_root() {
        eprintln!("not root: the appliance's backup and restore are not tested");
        return;
    }
    let boot = FirstBoot::new();
    boot.boot();
    let password = boot.decrypt("admin-password");
    let first_ca = read(&boot.state().join("appliance-ca.pem"));
    let passphrase = boot.path("passphrase");
    std::fs::write(&passphrase, "the appliance's backup passphrase\n").unwrap();
    let archive = boot.path("backup.lemur");
    let config = boot.state().join("lemur.toml");
    let as_root = |command: &str, file: &Path| {
        lemur(
            &[
                "--config",
                config.to_str().unwrap(),
                command,
                if command == "backup" { "-o" } else { "-a" },
                file.to_str().unwrap(),
                "--passphrase-file",
                passphrase.to_str().unwrap(),
                "--credstore",
                boot.credstore().to_str().unwrap(),
                "--as-user",
                "nobody",
                "--state-dir",
                boot.state().to_str().unwrap(),
            ],
            &[("SYSTEMD_CREDENTIAL_SECRET", &boot.host_key())],
        )
    };
    let daemon = boot.start();
    let backed_up = as_root("backup", &archive);
    daemon.stop();
    assert!(backed_up.status.success(), "{}", stderr(&backed_up));

    // Flashed afresh: another host key, state and credentials, provisioned anew.
    for gone in [boot.state(), boot.credstore()] {
        std::fs::remove_dir_all(&gone).unwrap();
    }
    std::fs::remove_file(boot.host_key()).unwrap();
    std::fs::create_dir(boot.state()).unwrap();
    std::os::unix::fs::chown(boot.state(), Some(NOBODY), Some(NOBODY)).unwrap();
    boot.boot();
    assert_ne!(read(&boot.state().join("appliance-ca.pem")), first_ca);

    let mut damaged = std::fs::read(&archive).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    let damaged_archive = boot.path("damaged.lemur");
    std::fs::write(&damaged_archive, damaged).unwrap();
    let fresh = boot.snapshot();
    let refused = as_root("restore", &damaged_archive);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("back as it was"),
        "{}",
        stderr(&refused)
    );
    let mut after = boot.snapshot();
    after.retain(|name, _| !name.contains(".failed-restore-"));
    assert!(after == fresh, "the failed restore changed the appliance");

    let restored = as_root("restore", &archive);
    assert!(restored.status.success(), "{}", stderr(&restored));
    assert_eq!(read(&boot.state().join("appliance-ca.pem")), first_ca);
    // The credentials, encrypted for this machine: the next boot's checks pass, provisioning
    // finds everything done, and the first appliance's admin password opens it.
    boot.boot();
    assert_eq!(boot.decrypt("admin-password"), password);
    the_daemon_serves_it(&boot, &password);
}

/// A hardware HSM's token as its owner leaves it for the appliance: initialised, with a user
/// PIN and a key of the owner's own in it. SoftHSM2 in a directory of its own stands in for
/// the HSM; to the appliance it is only a module path, a label and a PIN from the seed.
struct OwnersToken {
    conf: PathBuf,
    tokens: PathBuf,
    pin: &'static str,
}

impl OwnersToken {
    const LABEL: &'static str = "owners-token";

    fn new(boot: &FirstBoot) -> Self {
        let dir = boot.path("owners-hsm");
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\n",
                tokens.display()
            ),
        )
        .unwrap();
        let token = Self {
            conf,
            tokens,
            pin: "owner-pin-2468",
        };
        token.util(&[
            "--init-token",
            "--free",
            "--label",
            Self::LABEL,
            "--so-pin",
            "owner-so-pin",
            "--pin",
            token.pin,
        ]);
        let key = dir.join("owners-key.p8");
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "owners-key.p8",
            ],
            &dir,
        );
        token.util(&[
            "--import",
            key.to_str().unwrap(),
            "--token",
            Self::LABEL,
            "--label",
            "owners-key",
            "--id",
            "0a0b",
            "--pin",
            token.pin,
        ]);
        if lemur_testkit::is_root() {
            for path in std::iter::once(dir.clone())
                .chain(walk_dirs(&dir))
                .chain(walk(&dir))
            {
                std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        token
    }

    /// `softhsm2-util ARGS` on this HSM, as its owner runs it.
    fn util(&self, args: &[&str]) {
        let output = Command::new("softhsm2-util")
            .args(args)
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .expect("softhsm2-util (Debian package softhsm2)");
        assert!(
            output.status.success(),
            "{}{}",
            stdout(&output),
            stderr(&output)
        );
    }

    /// The token's object files (not its own record): an initialisation would remove them all.
    fn objects(&self) -> Vec<PathBuf> {
        walk(&self.tokens)
            .into_iter()
            .filter(|file| {
                file.extension().is_some_and(|ext| ext == "object")
                    && !file.ends_with("token.object")
            })
            .collect()
    }

    /// Writes the boot's seed: `base` and this token's `[hsm]`.
    fn write_seed(&self, boot: &FirstBoot, base: &str, label: &str, pin: Option<&str>) {
        std::fs::write(&boot.seed, format!("{base}{}", self.seed(label, pin))).unwrap();
    }

    /// The seed's `[hsm]` for this token, with `label` and, when given, `pin`.
    fn seed(&self, label: &str, pin: Option<&str>) -> String {
        let module = lemur_hsm::resolve_module(None);
        let pin = pin
            .map(|pin| format!("pin = \"{pin}\"\n"))
            .unwrap_or_default();
        format!(
            "\n[hsm]\n# The owner's HSM.\nmodule = \"{}\"\ntoken = \"{label}\"\n{pin}environment = {{ SOFTHSM2_CONF = \"{}\" }}\n",
            module.display(),
            self.conf.display()
        )
    }
}

/// Every directory under `dir`.
fn walk_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            dirs.extend(walk_dirs(&path));
            dirs.push(path);
        }
    }
    dirs
}

#[test]
fn a_hardware_hsm_named_by_the_seed_is_used_as_its_owner_made_it() {
    let boot = FirstBoot::new();
    let token = OwnersToken::new(&boot);
    let owners_objects = token.objects();
    // The owner's key pair.
    assert_eq!(owners_objects.len(), 2, "{owners_objects:?}");
    let seed_without_hsm = read(&boot.seed);

    // A label the HSM does not have: nothing is made, and the seed is read again next time.
    token.write_seed(&boot, &seed_without_hsm, "no-such-token", Some(token.pin));
    let credentials = boot.credentials();
    assert!(credentials.status.success(), "{}", stderr(&credentials));
    assert_eq!(boot.decrypt("hsm-pin"), token.pin);
    let seed_after = read(&boot.seed);
    assert!(!seed_after.contains(token.pin), "{seed_after}");
    assert!(
        seed_after.contains("# pin: taken into the appliance's encrypted credentials"),
        "{seed_after}"
    );
    assert!(
        seed_after.starts_with(&seed_without_hsm) && seed_after.contains("# The owner's HSM."),
        "{seed_after}"
    );
    refused(boot.provision(), "has no token labelled \"no-such-token\"");
    assert!(!boot.state().join("lemur.toml").exists());
    assert!(!boot.state().join("lemur.db").exists());

    // The right label, the PIN already taken: the owner's token holds the appliance's keys.
    token.write_seed(&boot, &seed_without_hsm, OwnersToken::LABEL, None);
    let said = boot.boot();
    let config = read(&boot.state().join("lemur.toml"));
    assert!(
        config.contains(&format!("token = \"{}\"", OwnersToken::LABEL)),
        "{config}"
    );
    assert!(
        !boot.state().join("softhsm").exists(),
        "a SoftHSM2 token was made beside the HSM"
    );
    let objects = token.objects();
    assert!(
        owners_objects.iter().all(|kept| objects.contains(kept)),
        "the owner's key is gone: {objects:?}"
    );
    assert!(
        objects.len() >= 5,
        "no KEK and CA key in the owner's token: {objects:?}"
    );
    let password = boot.decrypt("admin-password");
    let daemon_said = the_daemon_serves_it(&boot, &password);
    let everything_said = said
        .iter()
        .map(|output| format!("{}{}", stdout(output), stderr(output)))
        .chain(daemon_said)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!everything_said.contains(token.pin), "{everything_said}");

    // A new PIN in the seed replaces the credential (this one is wrong: the daemon says so).
    token.write_seed(
        &boot,
        &seed_without_hsm,
        OwnersToken::LABEL,
        Some("not-the-pin"),
    );
    let credentials = boot.credentials();
    assert!(credentials.status.success(), "{}", stderr(&credentials));
    assert_eq!(boot.decrypt("hsm-pin"), "not-the-pin");
    assert!(!read(&boot.seed).contains("not-the-pin"));
    refused(boot.provision(), "CKR_PIN_INCORRECT");
    assert!(
        boot.state().join("lemur.toml").exists(),
        "a configuration in use was removed"
    );

    // A seed that no longer says rightly which HSM: the appliance goes on with the PIN it has.
    std::fs::write(
        &boot.seed,
        format!("{seed_without_hsm}\n[hsm]\ntoken = 5\n"),
    )
    .unwrap();
    let credentials = boot.credentials();
    assert!(credentials.status.success(), "{}", stderr(&credentials));
    assert_eq!(boot.decrypt("hsm-pin"), "not-the-pin");
}

#[test]
fn a_hardware_hsm_without_its_pin_or_with_a_wrong_section_gets_no_credential() {
    let boot = FirstBoot::new();
    let token = OwnersToken::new(&boot);
    let seed_without_hsm = read(&boot.seed);
    token.write_seed(&boot, &seed_without_hsm, OwnersToken::LABEL, None);
    refused(boot.credentials(), "hsm.pin: is missing from");
    assert!(!boot.credstore().join("lemur.hsm-pin").exists());

    std::fs::write(&boot.seed, format!("{seed_without_hsm}\n[hsm]\nmodule = \"/var/lib/lemur/vendor.so\"\ntoken = \"t\"\npin = \"1234\"\n")).unwrap();
    refused(boot.credentials(), "does not say rightly which HSM to use");
    assert!(!boot.credstore().join("lemur.hsm-pin").exists());
    assert!(
        read(&boot.seed).contains("pin = \"1234\""),
        "a PIN was taken from a seed that was not used"
    );
}

/// Asserts that a command failed and said `complaint` on stderr.
fn refused(output: Output, complaint: &str) {
    assert!(!output.status.success(), "{}", stdout(&output));
    assert!(stderr(&output).contains(complaint), "{}", stderr(&output));
}

/// An appliance provisioned on SoftHSM2 keeps its token's PIN when its seed later names a
/// hardware HSM with a PIN: provisioning read the seed's HSM once, and the new PIN would open
/// nothing.
#[test]
fn a_later_hsm_in_the_seed_of_a_softhsm_appliance_changes_no_pin() {
    let boot = FirstBoot::new();
    boot.boot();
    let pin = boot.decrypt("hsm-pin");
    let token = OwnersToken::new(&boot);
    let seed = read(&boot.seed);
    token.write_seed(&boot, &seed, OwnersToken::LABEL, Some(token.pin));
    let credentials = boot.credentials();
    assert!(credentials.status.success(), "{}", stderr(&credentials));
    assert!(
        stdout(&credentials).contains("the seed's [hsm] is not used"),
        "{}",
        stdout(&credentials)
    );
    assert_eq!(boot.decrypt("hsm-pin"), pin);
    boot.boot();
}
