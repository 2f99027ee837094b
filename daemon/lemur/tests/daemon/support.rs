//! Shared test helpers: starting the daemon on either database, openssl and pkilint checks.

use lemur_testkit::daemon::Daemon;
use lemur_testkit::postgres::Postgres;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The rows `sql` returns from the SQLite database of `daemon`, one per line, columns separated
/// by `|`.
pub fn sqlite_query(daemon: &Daemon, sql: &str) -> String {
    sqlite_query_at(&daemon.state_dir().join("lemur.db"), sql)
}

/// The rows `sql` returns from the SQLite database `database`, as [`sqlite_query`] gives them.
pub fn sqlite_query_at(database: &Path, sql: &str) -> String {
    // Committed, so a statement that writes (a test changing a row) takes effect.
    python_on_sqlite(
        "db = sqlite3.connect(sys.argv[1])\nrows = db.execute(sys.argv[2]).fetchall()\ndb.commit()\nfor row in rows:\n    print('|'.join('' if v is None else str(v) for v in row))",
        database,
        sql,
    )
}

/// What Python's `script` prints, run with `sqlite3` and `sys` imported, the database's path as
/// `sys.argv[1]` and `sql` as `sys.argv[2]`; the test fails if it does.
fn python_on_sqlite(script: &str, database: &Path, sql: &str) -> String {
    let output = Command::new("python3")
        .args(["-c", &format!("import sqlite3, sys\n{script}")])
        .arg(database)
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A daemon and, for the PostgreSQL leg, the cluster behind it.
pub struct Appliance {
    pub daemon: Daemon,
    pub postgres: Option<Postgres>,
    pub token: String,
}

/// Which database a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Db {
    Sqlite,
    Postgres,
}

impl Appliance {
    pub fn start(db: Db) -> Self {
        let postgres = matches!(db, Db::Postgres).then(Postgres::start);
        let daemon = Daemon::start(
            Path::new(env!("CARGO_BIN_EXE_lemur")),
            postgres.as_ref().map(|p| p.url.as_str()),
        );
        let token = daemon.admin_token();
        Self {
            daemon,
            postgres,
            token,
        }
    }

    pub fn get(&self, path: &str) -> lemur_testkit::daemon::Reply {
        self.daemon.get(path, Some(&self.token))
    }

    pub fn post(&self, path: &str, body: &Value) -> lemur_testkit::daemon::Reply {
        self.daemon.post(path, Some(&self.token), body)
    }

    /// Everything the database holds, as bytes: the SQLite files or a pg_dump.
    pub fn database_bytes(&self) -> Vec<u8> {
        match &self.postgres {
            Some(postgres) => postgres.dump(),
            None => {
                let mut bytes = Vec::new();
                for name in ["lemur.db", "lemur.db-wal"] {
                    bytes.extend(
                        std::fs::read(self.daemon.state_dir().join(name)).unwrap_or_default(),
                    );
                }
                assert!(!bytes.is_empty(), "the SQLite database exists");
                bytes
            }
        }
    }

    /// The rows `sql` returns from the daemon's database, one per line, columns separated by `|`.
    pub fn query(&self, sql: &str) -> String {
        match &self.postgres {
            Some(postgres) => postgres.query(sql),
            None => sqlite_query(&self.daemon, sql),
        }
    }

    /// Runs `sql`, statements separated by `;`, on one connection to the daemon's database (so
    /// a temporary table lives from one statement to the next).
    pub fn script(&self, sql: &str) {
        match &self.postgres {
            Some(postgres) => {
                postgres.query(sql);
            }
            None => {
                python_on_sqlite(
                    "with sqlite3.connect(sys.argv[1]) as db:\n    db.executescript(sys.argv[2])",
                    &self.daemon.state_dir().join("lemur.db"),
                    sql,
                );
            }
        }
    }

    /// Issues `NAME.example.com` from `authority` (a key made in the HSM) and returns its JSON.
    pub fn issue(&self, authority: i64, name: &str) -> Value {
        let reply = self.post(
            "/api/1/certificates",
            &json!({
                "owner": "tests@example.com", "authority": { "id": authority },
                "commonName": format!("{name}.example.com"),
            }),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body
    }

    /// The same daemon, signed in again (after a restart, which ends the old session's use).
    pub fn signed_in_again(self) -> Self {
        let token = self.daemon.admin_token();
        Self { token, ..self }
    }

    /// Creates a root authority and returns its JSON.
    pub fn root(&self, name: &str, key_type: &str) -> Value {
        let reply = self.post(
            "/api/1/authorities",
            &json!({
                "name": name, "owner": "pki@example.com", "commonName": format!("{name} Root"),
                "type": "root", "keyType": key_type, "validityYears": 5,
                "plugin": { "slug": "cryptography-issuer" }, "country": "US", "organization": "Lemur Tests",
            }),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body
    }

    /// Creates a sub-CA under `parent` and returns its JSON.
    pub fn sub_ca(&self, name: &str, parent: i64, extra: Value) -> Value {
        let mut body = json!({
            "name": name, "owner": "pki@example.com", "commonName": format!("{name} Issuing"),
            "type": "subca", "parent": { "id": parent }, "keyType": "ECCPRIME256V1", "validityYears": 3,
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let reply = self.post("/api/1/authorities", &body);
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body
    }
}

/// A scratch directory for files handed to openssl.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lemur-test-")
        .tempdir()
        .unwrap()
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

pub use lemur_testkit::{openssl, openssl_p256_request};

/// The PEM blocks of a chain, issuer first, root last.
fn split_pem(chain: &str) -> Vec<String> {
    chain
        .split("-----END CERTIFICATE-----")
        .filter(|block| block.contains("-----BEGIN CERTIFICATE-----"))
        .map(|block| format!("{}-----END CERTIFICATE-----\n", block.trim_start()))
        .collect()
}

/// `openssl verify` of `body` against its `chain` (root last, trusted; the rest untrusted).
pub fn verify_with_openssl(body: &str, chain: &str) {
    let dir = scratch();
    let blocks = split_pem(chain);
    let (root, intermediates) = blocks.split_last().expect("a chain with a root");
    write(dir.path(), "root.pem", root);
    write(dir.path(), "untrusted.pem", &intermediates.concat());
    write(dir.path(), "leaf.pem", body);
    let mut args = vec!["verify", "-x509_strict", "-CAfile", "root.pem"];
    if !intermediates.is_empty() {
        args.extend(["-untrusted", "untrusted.pem"]);
    }
    args.push("leaf.pem");
    let out = openssl(&args, dir.path());
    assert!(out.contains("leaf.pem: OK"), "{out}");
}

/// pkilint's RFC 5280 lints, and the CA/Browser Forum TLS lints of `cabf_type` if given, with no
/// finding of ERROR or worse.
pub fn pkilint(pem: &str, cabf_type: Option<&str>) {
    let dir = scratch();
    let file = write(dir.path(), "cert.pem", pem);
    let mut runs = vec![Command::new("lint_pkix_cert")];
    runs[0].args(["lint", "-s", "ERROR"]).arg(&file);
    if let Some(kind) = cabf_type {
        let mut cabf = Command::new("lint_cabf_serverauth_cert");
        cabf.args(["lint", "-s", "ERROR", "-t", kind]).arg(&file);
        runs.push(cabf);
    }
    for mut run in runs {
        let output = run.output().expect("pkilint (pip install pkilint)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success() && text.trim().is_empty(),
            "pkilint {:?}: {text}",
            run.get_program()
        );
    }
}

/// A fresh P-256 key and CSR for `names` (the first is the CN), made by openssl.
pub fn openssl_csr(names: &[&str]) -> (String, String) {
    let dir = scratch();
    let san = names
        .iter()
        .map(|n| format!("DNS:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    openssl_p256_request(
        dir.path(),
        "-new",
        "key.pem",
        &[
            "-subj",
            &format!("/CN={}", names[0]),
            "-addext",
            &format!("subjectAltName={san}"),
            "-out",
            "csr.pem",
        ],
    );
    (
        std::fs::read_to_string(dir.path().join("key.pem")).unwrap(),
        std::fs::read_to_string(dir.path().join("csr.pem")).unwrap(),
    )
}

/// Whether openssl sees the same public key in `cert` and `key`.
pub fn key_matches(cert: &str, key: &str) -> bool {
    let dir = scratch();
    write(dir.path(), "cert.pem", cert);
    write(dir.path(), "key.pem", key);
    openssl(
        &["x509", "-in", "cert.pem", "-noout", "-pubkey"],
        dir.path(),
    ) == openssl(&["pkey", "-in", "key.pem", "-pubout"], dir.path())
}

/// The `lemur-hsm` admin CLI built next to this test binary.
pub fn lemur_hsm() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = dir.join("lemur-hsm");
    assert!(
        binary.exists(),
        "build lemur-hsm first (cargo build --workspace)"
    );
    binary
}

/// Declares a test that runs `$body(Db)` on SQLite and one on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, $scenario:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$scenario($crate::support::Db::Sqlite);
            }

            #[test]
            fn postgres() {
                super::$scenario($crate::support::Db::Postgres);
            }
        }
    };
}

/// Lemur-format dates `from` and `to` minutes from now.
#[allow(clippy::disallowed_methods)] // the daemon checks dates against the real clock
pub fn window(from: i64, to: i64) -> (String, String) {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z");
    let at = |minutes: i64| {
        (time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes))
            .format(&format)
            .unwrap()
    };
    (at(from), at(to))
}

/// rsyslogd's configuration check (`rsyslogd -N1`) passes, with neither error nor warning, on
/// Debian's own rsyslog.conf whose include of /etc/rsyslog.d is replaced by `include` (a line of
/// rsyslog configuration including what is checked).
pub fn rsyslog_accepts_debians_configuration_with(include: &str) {
    let debian = std::fs::read_to_string("/etc/rsyslog.conf")
        .expect("/etc/rsyslog.conf (Debian package rsyslog)");
    let debians_include = "$IncludeConfig /etc/rsyslog.d/*.conf";
    assert!(
        debian.contains(debians_include),
        "Debian's rsyslog.conf changed"
    );
    let dir = scratch();
    let config = write(
        dir.path(),
        "rsyslog.conf",
        &debian.replace(debians_include, include),
    );
    let output = Command::new("rsyslogd")
        .args(["-N1", "-f"])
        .arg(&config)
        .output()
        .expect("rsyslogd (Debian package rsyslog)");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !said.contains("error") && !said.contains("warning"),
        "{said}"
    );
}

/// The image's firewall (image/rootfs/etc/nftables.conf), its include of the seed's rules
/// pointed at `seed_rules` (a directory `apply-seed` wrote), checked by nft: in a network
/// namespace of its own, so as root only (elsewhere it says so and checks nothing).
pub fn nft_accepts_the_images_firewall_with(seed_rules: &Path) {
    if !lemur_testkit::is_root() {
        eprintln!("not root: the image's firewall is not checked with nft");
        return;
    }
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../image/rootfs/etc/nftables.conf"
    ))
    .unwrap();
    let include = r#"include "/run/lemur-appliance/*.nft""#;
    assert_eq!(
        shipped.matches(include).count(),
        1,
        "the firewall's include changed"
    );
    let dir = scratch();
    let ruleset = write(
        dir.path(),
        "nftables.conf",
        &shipped.replace(
            include,
            &format!(r#"include "{}/*.nft""#, seed_rules.display()),
        ),
    );
    let output = Command::new("unshare")
        .args([
            "--net",
            "sh",
            "-c",
            "nft -f \"$1\" && nft list chain inet filter input",
            "-",
        ])
        .arg(&ruleset)
        .output()
        .expect("unshare (util-linux) and nft (Debian package nftables)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed = String::from_utf8_lossy(&output.stdout);
    let has_ssh = std::fs::read_dir(seed_rules)
        .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name() == "firewall-ssh.nft")));
    assert_eq!(listed.contains("tcp dport 22 accept"), has_ssh, "{listed}");
    assert!(listed.contains("tcp dport { 80, 443 } accept"), "{listed}");
}

/// The permission bits of `path`.
pub fn mode_of(path: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions()) & 0o777
}

/// A response as curl saw it.
pub(crate) struct Response {
    pub(crate) status: u16,
    /// Header lines, names lower-cased.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Runs curl with `arguments` and parses the last response it printed.
pub(crate) fn curl(arguments: &[&str]) -> Response {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--include", "--max-time", "30"])
        .args(arguments)
        .output()
        .expect("curl (Debian package curl)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "curl {arguments:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_default();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A CA kept away from the daemon and run with openssl: what an `offline-issuer` authority
/// stands for (an offline root, another organisation's CA).
pub struct OfflineCa {
    dir: tempfile::TempDir,
    /// Its certificate, PEM.
    pub certificate: String,
}

impl OfflineCa {
    /// A new self-signed P-256 CA.
    pub fn new(name: &str) -> Self {
        let dir = scratch();
        openssl_p256_request(
            dir.path(),
            "-x509",
            "ca.key",
            &[
                "-subj",
                &format!("/CN={name}"),
                "-days",
                "30",
                "-out",
                "ca.pem",
            ],
        );
        let certificate = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
        Self { dir, certificate }
    }

    /// Registers it with the daemon as an `offline-issuer` authority named `name`.
    pub fn register(&self, app: &Appliance, name: &str) -> Value {
        let reply = app.post(
            "/api/1/authorities",
            &json!({
                "name": name, "owner": "pki@example.com", "commonName": format!("{name} CA"),
                "plugin": { "slug": "offline-issuer" }, "body": self.certificate,
            }),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body
    }

    /// Signs `csr` as this CA would (its names copied from the request, a TLS server
    /// certificate): the certificate, PEM.
    pub fn sign(&self, csr: &str) -> String {
        self.sign_with(
            csr,
            &["-copy_extensions", "copy"],
            "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
    }

    /// Signs `csr` with openssl's `x509 -req` options `options` (`-subj`, `-copy_extensions`)
    /// and the extensions `extensions` (an extfile's text): a CA that signs something else than
    /// it was asked.
    pub fn sign_with(&self, csr: &str, options: &[&str], extensions: &str) -> String {
        let dir = self.dir.path();
        std::fs::write(dir.join("order.csr"), csr).unwrap();
        std::fs::write(dir.join("leaf.cnf"), extensions).unwrap();
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            "order.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "20",
            "-extfile",
            "leaf.cnf",
            "-out",
            "leaf.pem",
        ];
        args.extend_from_slice(options);
        openssl(&args, dir);
        std::fs::read_to_string(dir.join("leaf.pem")).unwrap()
    }
}

/// Serves `connections` on a backup service socket at `path` as `serve` says, in a thread.
pub fn backup_service(
    path: &Path,
    connections: usize,
    mut serve: impl FnMut(std::os::unix::net::UnixStream) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            serve(stream.unwrap());
        }
    })
}

/// One frame of the backup service's stream: data, or (`None`) the end and its verdict.
pub fn frame(stream: &mut impl std::io::Write, data: Option<&[u8]>, verdict: &str) {
    match data {
        Some(bytes) => {
            stream
                .write_all(&u32::try_from(bytes.len()).unwrap().to_be_bytes())
                .unwrap();
            stream.write_all(bytes).unwrap();
        }
        None => {
            stream.write_all(&0u32.to_be_bytes()).unwrap();
            stream.write_all(verdict.as_bytes()).unwrap();
        }
    }
}

/// A backup service on `path` that, for each of `connections`, sends a quarter of a mebibyte of
/// archive and then fails (no room left): a download that breaks off after it began.
pub fn breaking_backup_service(path: &Path, connections: usize) -> std::thread::JoinHandle<()> {
    backup_service(path, connections, |mut stream| {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&stream), &mut line).unwrap();
        frame(&mut stream, Some(&vec![0x5a; 256 << 10]), "");
        frame(&mut stream, None, "error: no room left on /var/lib/lemur");
    })
}
