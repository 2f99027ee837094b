//! A throwaway PostgreSQL cluster for one test: `initdb` in a temporary directory, a free port on
//! 127.0.0.1, trust authentication (nothing but the test can reach it), removed on drop. With
//! `DATABASE_URL` set, that database is used instead.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// A running cluster with an empty `lemur` database.
pub struct Postgres {
    /// `postgres://lemur@127.0.0.1:PORT/lemur`.
    pub url: String,
    port: u16,
    bin: PathBuf,
    cluster: Option<TempDir>,
    /// Whether commits reach the disk (fsync on), as in production; tests run without.
    durable: bool,
}

/// PostgreSQL's server programs (Debian keeps them out of PATH).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .filter(|dir| dir.join("initdb").exists())
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)")
}

/// A PostgreSQL program, run as the `postgres` user when the test runs as root (initdb refuses
/// root).
fn command(bin: &Path, program: &str) -> Command {
    if crate::is_root() {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    }
}

fn run(bin: &Path, program: &str, args: &[&str]) -> std::process::Output {
    let output = command(bin, program)
        .args(args)
        .output()
        .expect("PostgreSQL program");
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

impl Postgres {
    /// Starts a cluster (or uses `DATABASE_URL`) that skips fsync: tests need no durability
    /// and run faster without.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Starts a cluster (or uses `DATABASE_URL`) whose commits are durable, as a production
    /// server's are: for benchmarks, which must pay what a deployment pays.
    pub fn start_durable() -> Self {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Self {
        let bin = bin_dir();
        if let Ok(url) = std::env::var("DATABASE_URL") {
            if url.starts_with("postgres") {
                return Self {
                    url,
                    port: 0,
                    bin,
                    cluster: None,
                    durable,
                };
            }
        }
        let cluster = tempfile::Builder::new()
            .prefix("lemur-pg-")
            .tempdir()
            .expect("cluster directory");
        let data = cluster.path().join("data");
        if crate::is_root() {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(cluster.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the cluster directory");
        }
        let data = data.to_str().expect("UTF-8 path").to_owned();
        run(
            &bin,
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "lemur",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let port = crate::free_port();
        let postgres = Self {
            url: format!("postgres://lemur@127.0.0.1:{port}/lemur"),
            port,
            bin,
            cluster: Some(cluster),
            durable,
        };
        postgres.start_again();
        let bin = postgres.bin.clone();
        let port_text = port.to_string();
        run(
            &bin,
            "createdb",
            &["-h", "127.0.0.1", "-p", &port_text, "-U", "lemur", "lemur"],
        );
        postgres
    }

    /// The cluster's directory (a test's own cluster only).
    fn directory(&self) -> &Path {
        self.cluster
            .as_ref()
            .expect("a cluster this test started")
            .path()
    }

    /// Starts the (stopped) cluster on its port.
    pub fn start_again(&self) {
        let dir = self.directory().to_str().expect("UTF-8 path");
        let port = self.port;
        let durability = if self.durable {
            ""
        } else {
            " -c fsync=off -c full_page_writes=off"
        };
        let options = format!("-p {port} -k {dir} -c listen_addresses=127.0.0.1{durability}");
        let data = format!("{dir}/data");
        let log = format!("{dir}/postgres.log");
        run(
            &self.bin,
            "pg_ctl",
            &[
                "-D", &data, "-o", &options, "-l", &log, "-w", "-t", "60", "start",
            ],
        );
    }

    /// Stops the cluster, as an outage would (connections are cut).
    pub fn stop(&self) {
        self.stop_with("immediate");
    }

    /// Stops the cluster as an administrator's restart does (`-m fast`): each session is told
    /// the server is shutting down (57P01) before its connection closes.
    pub fn stop_fast(&self) {
        self.stop_with("fast");
    }

    fn stop_with(&self, mode: &str) {
        let data = self.directory().join("data");
        let data = data.to_str().expect("UTF-8 path");
        run(&self.bin, "pg_ctl", &["-D", data, "-m", mode, "-w", "stop"]);
    }

    /// The port it listens on (0 for a cluster named by `DATABASE_URL`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Turns TLS on with a certificate for `localhost` and 127.0.0.1 from a new CA; returns the
    /// CA's PEM file.
    pub fn enable_tls(&self) -> PathBuf {
        let dir = self.directory();
        crate::openssl_p256_request(
            dir,
            "-x509",
            "ca.key",
            &[
                "-subj",
                "/CN=Test Database CA",
                "-days",
                "2",
                "-out",
                "ca.pem",
            ],
        );
        crate::openssl_p256_request(
            dir,
            "-new",
            "server.key",
            &["-subj", "/CN=localhost", "-out", "server.csr"],
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .expect("extensions file");
        crate::openssl_ca_sign(dir, "server.csr", "2", "server.ext", "server.pem");
        if crate::is_root() {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(dir.join("server.key"))
                .arg(dir.join("server.pem"))
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the server key");
        }
        let key = dir.join("server.key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("server key mode");
        self.alter_system(&[
            "ssl = on",
            &format!("ssl_cert_file = '{}'", dir.join("server.pem").display()),
            &format!("ssl_key_file = '{}'", key.display()),
        ]);
        dir.join("ca.pem")
    }

    /// Sets each of `settings` (`name = value`) server-wide and reloads the configuration, so
    /// sessions already open (the daemon's) take them too.
    pub fn alter_system(&self, settings: &[&str]) {
        for setting in settings {
            self.query(&format!("ALTER SYSTEM SET {setting}"));
        }
        self.query("SELECT pg_reload_conf()");
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.directory().join("postgres.log")).unwrap_or_default()
    }

    /// Makes TCP connections (the daemon's) sign in with `password` (SCRAM); the tests' own
    /// `psql` and `pg_dump` keep the cluster's unix socket, which stays trusted.
    pub fn require_password(&self, password: &str) {
        self.query(&format!("ALTER ROLE lemur PASSWORD '{password}'"));
        let hba = self.directory().join("data/pg_hba.conf");
        std::fs::write(
            &hba,
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("pg_hba.conf");
        self.query("SELECT pg_reload_conf()");
    }

    /// How `pg_dump`, `psql` and `pgbench` reach the database: the cluster's socket directory.
    fn connection(&self) -> Vec<String> {
        if self.cluster.is_some() {
            [
                "-h",
                self.directory().to_str().expect("UTF-8 path"),
                "-p",
                &self.port.to_string(),
                "-U",
                "lemur",
                "lemur",
            ]
            .map(str::to_owned)
            .to_vec()
        } else {
            vec![self.url.clone()]
        }
    }

    /// `pg_dump` of the database, as SQL text.
    pub fn dump(&self) -> Vec<u8> {
        let connection = self.connection();
        let args: Vec<&str> = connection.iter().map(String::as_str).collect();
        run(&self.bin, "pg_dump", &args).stdout
    }

    /// A `psql` session reading statements from its stdin: for a test to hold a transaction
    /// open while the daemon works.
    pub fn session(&self) -> std::process::Child {
        command(&self.bin, "psql")
            .args(["-At", "-v", "ON_ERROR_STOP=1"])
            .args(self.connection())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("psql")
    }

    /// The median latency of `script`'s transactions, run by `pgbench` on one connection for
    /// `duration` (whole seconds, at least one) as prepared statements (as the daemon runs its
    /// own), read from its per-transaction log: what a statement costs on this server without
    /// the daemon, for a benchmark to set beside the daemon's figures.
    pub fn pgbench_p50(&self, script: &str, duration: Duration) -> Duration {
        let directory = tempfile::tempdir().expect("a directory for pgbench");
        // pgbench runs as the `postgres` user when the test runs as root: it reads the script
        // and writes its log there.
        std::fs::set_permissions(directory.path(), std::fs::Permissions::from_mode(0o777))
            .expect("opening pgbench's directory");
        let script_file = directory.path().join("script.sql");
        std::fs::write(&script_file, script).expect("writing pgbench's script");
        std::fs::set_permissions(&script_file, std::fs::Permissions::from_mode(0o644))
            .expect("opening pgbench's script");
        let prefix = directory.path().join("transactions");
        let seconds = duration.as_secs().max(1).to_string();
        let mut args = vec!["-n", "-M", "prepared", "-c", "1", "-T", &seconds, "--log"];
        let log_prefix = format!("--log-prefix={}", prefix.display());
        let script_arg = format!("--file={}", script_file.display());
        args.extend([log_prefix.as_str(), script_arg.as_str()]);
        let connection = self.connection();
        args.extend(connection.iter().map(String::as_str));
        run(&self.bin, "pgbench", &args);
        let mut latencies: Vec<u64> = std::fs::read_dir(directory.path())
            .expect("reading pgbench's log")
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            // `transactions.PID`, a line per transaction: client, transaction, latency (µs), ...
            .filter(|path| {
                path.file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with("transactions."))
            })
            .map(|path| std::fs::read_to_string(path).expect("pgbench's log"))
            .flat_map(|log| {
                log.lines()
                    .filter_map(|line| line.split_whitespace().nth(2)?.parse().ok())
                    .collect::<Vec<u64>>()
            })
            .collect();
        assert!(!latencies.is_empty(), "pgbench logged no transaction");
        latencies.sort_unstable();
        Duration::from_micros(latencies[latencies.len() / 2])
    }

    /// The rows `sql` returns, one per line, columns separated by `|`.
    pub fn query(&self, sql: &str) -> String {
        let mut args = vec!["-At", "-c", sql];
        let connection = self.connection();
        args.extend(connection.iter().map(String::as_str));
        String::from_utf8_lossy(&run(&self.bin, "psql", &args).stdout).into_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(cluster) = &self.cluster {
            let data = cluster.path().join("data");
            let _ = command(&self.bin, "pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "stop"])
                .output();
        }
    }
}
