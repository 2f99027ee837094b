//! Test kit for the integration tests and benchmarks: throwaway SoftHSM2 tokens (here), a real
//! daemon ([`daemon`]), a throwaway PostgreSQL cluster ([`postgres`]), the benchmarks' timed loop
//! ([`bench`]) and their lean load client ([`load`]).
//!
//! SoftHSM2 reads its configuration (`SOFTHSM2_CONF`) once, when the module is initialised, so the
//! kit gives each test process one temporary token directory (under nextest, each test is its own
//! process, so each test gets its own directory) and each [`TempToken`] its own token in it, with
//! random PINs in 0600 files. Nothing touches the system token directory.
#![allow(clippy::expect_used, clippy::panic)] // test support: fail loudly and at once

use lemur_entropy::{EntropySource, HealthMonitor, SourceError};
use lemur_hsm::{HsmConfig, KeyStore, Pin, Pkcs11KeyStore};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tempfile::TempDir;
use zeroize::Zeroizing;

static SOFTHSM_DIR: OnceLock<TempDir> = OnceLock::new();
static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Writes `dir/softhsm2.conf` for a token directory `dir/tokens` and returns its path.
pub fn write_softhsm_conf(dir: &Path) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).expect("token directory");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .expect("SoftHSM configuration");
    conf
}

/// The process's SoftHSM2 configuration file, created (and `SOFTHSM2_CONF` set) on first use.
pub fn softhsm_conf() -> PathBuf {
    let dir = SOFTHSM_DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("lemur-softhsm-")
            .tempdir()
            .expect("temporary SoftHSM directory");
        let conf = write_softhsm_conf(dir.path());
        // Edition 2021: set_var is safe to call. It runs once, before this process loads the
        // PKCS#11 module, which is the only reader of the variable.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        dir
    });
    dir.path().join("softhsm2.conf")
}

/// The token directory of this process's SoftHSM2.
pub fn token_dir() -> PathBuf {
    softhsm_conf().with_file_name("tokens")
}

/// Writes `content` to a new file only the owner can read.
pub fn write_secret_file(path: &Path, content: &str) {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("secret file");
    file.write_all(content.as_bytes())
        .expect("write secret file");
}

/// `bytes` random bytes, hex-encoded.
pub fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).expect("getrandom");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// A freshly initialised SoftHSM2 token with random SO and user PINs.
pub struct TempToken {
    /// The token label.
    pub label: String,
    /// File holding the user PIN.
    pub pin_file: PathBuf,
    /// File holding the security officer PIN.
    pub so_pin_file: PathBuf,
    secrets: TempDir,
}

impl TempToken {
    /// Creates and initialises the token through the admin code path operators use.
    pub fn new() -> Self {
        let token = Self::uninitialised();
        let so_pin = Pin::from_file(&token.so_pin_file).expect("SO PIN");
        let user_pin = Pin::from_file(&token.pin_file).expect("user PIN");
        // Threads of one test process share SoftHSM2's single free slot: initialise one at a time.
        let _one_at_a_time = INIT_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lemur_hsm::admin::init_token(&Self::module(), &token.label, &so_pin, &user_pin)
            .expect("initialise SoftHSM token");
        token
    }

    /// A label and PIN files, without creating the token (for testing `init-token`).
    pub fn uninitialised() -> Self {
        softhsm_conf();
        let secrets = tempfile::Builder::new()
            .prefix("lemur-pins-")
            .tempdir()
            .expect("PIN directory");
        let pin_file = secrets.path().join("user.pin");
        let so_pin_file = secrets.path().join("so.pin");
        write_secret_file(&pin_file, &random_hex(8));
        write_secret_file(&so_pin_file, &random_hex(8));
        Self {
            label: format!("test-{}", random_hex(6)),
            pin_file,
            so_pin_file,
            secrets,
        }
    }

    /// The SoftHSM2 module.
    pub fn module() -> PathBuf {
        lemur_hsm::resolve_module(None)
    }

    /// A SoftHSM2 configuration with a token directory of this token's own, for tests that run
    /// the admin CLI in other processes: SoftHSM2 does not cope with processes creating tokens in
    /// one directory at the same time.
    pub fn private_softhsm_conf(&self) -> PathBuf {
        write_softhsm_conf(&self.secrets.path().join("softhsm"))
    }

    /// A directory for the test's own files, removed with the token's PIN files.
    pub fn scratch_dir(&self) -> &Path {
        self.secrets.path()
    }

    /// The key store configuration for this token.
    pub fn config(&self) -> HsmConfig {
        HsmConfig::new(self.label.clone(), self.pin_file.clone())
    }

    /// The user PIN.
    pub fn pin(&self) -> Pin {
        Pin::from_file(&self.pin_file).expect("user PIN")
    }

    /// Writes a wrong PIN to a new file and returns its path.
    pub fn wrong_pin_file(&self) -> PathBuf {
        let path = self.secrets.path().join("wrong.pin");
        if !path.exists() {
            write_secret_file(&path, "not-the-pin");
        }
        path
    }

    /// Opens a key store on the token, with an entropy monitor over the OS and token RNGs that
    /// has passed its first check.
    pub fn open(&self) -> Pkcs11KeyStore {
        let monitor = Arc::new(HealthMonitor::with_os_source());
        let store = Pkcs11KeyStore::open(&self.config(), Arc::clone(&monitor)).expect("open token");
        monitor.add_source(store.rng_source());
        let report = monitor.check();
        assert!(report.healthy, "entropy health: {report:?}");
        store
    }

    /// Like [`TempToken::open`], wrapped for code that takes the trait object.
    pub fn open_shared(&self) -> Arc<dyn KeyStore> {
        Arc::new(self.open())
    }

    /// A PIN typed by the test rather than read from a file.
    pub fn pin_value(value: &str) -> Pin {
        Pin::new(Zeroizing::new(value.to_owned())).expect("non-empty PIN")
    }
}

impl Default for TempToken {
    fn default() -> Self {
        Self::new()
    }
}

/// The token served over a unix socket by `p11-kit server`, reached through p11-kit's client
/// module: a network HSM that the test can unplug ([`RemoteToken::stop`]) and plug back in
/// ([`RemoteToken::start`]). The server gets its own copy of the token, in a token directory no
/// other test writes to, so concurrent token creation cannot disturb its SoftHSM2.
pub struct RemoteToken {
    socket: PathBuf,
    conf: PathBuf,
    token_label: String,
    server: Option<std::process::Child>,
}

/// p11-kit's client module on Debian.
pub const P11_KIT_CLIENT: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so";

impl RemoteToken {
    /// Serves `token` and points this process's p11-kit client at it. Call before any other use
    /// of the client module in this process.
    pub fn serve(token: &TempToken) -> Self {
        let socket = token.scratch_dir().join("p11-kit.sock");
        let conf = copy_token(token);
        std::env::set_var(
            "P11_KIT_SERVER_ADDRESS",
            format!("unix:path={}", socket.display()),
        );
        let mut remote = Self {
            socket,
            conf,
            token_label: token.label.clone(),
            server: None,
        };
        remote.start();
        remote
    }

    /// The key store configuration reaching the token through the client module.
    pub fn config(&self, token: &TempToken) -> HsmConfig {
        let mut config = token.config();
        config.module = Some(PathBuf::from(P11_KIT_CLIENT));
        config
    }

    /// Starts the server and waits until it accepts connections (the socket file appears at
    /// `bind`, before the server listens, so its existence alone is not readiness).
    pub fn start(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let child = std::process::Command::new("p11-kit")
            .env("SOFTHSM2_CONF", &self.conf)
            .args(["server", "--foreground", "--provider"])
            .arg(lemur_hsm::resolve_module(None))
            .arg("--name")
            .arg(&self.socket)
            .arg(format!("pkcs11:token={}", self.token_label))
            .stdout(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("p11-kit server (apt-get install p11-kit p11-kit-modules)");
        self.server = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "p11-kit server did not start"
            );
            std::thread::yield_now();
        }
    }

    /// Kills the server and the per-connection processes it forked: the token becomes
    /// unreachable.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }
}

/// Copies `token` out of the shared token directory into a private one and returns the SoftHSM2
/// configuration that serves it.
fn copy_token(token: &TempToken) -> PathBuf {
    let source = std::fs::read_dir(token_dir())
        .expect("token directory")
        .map(|entry| entry.expect("token directory entry").path())
        .find(|dir| {
            std::fs::read(dir.join("token.object")).is_ok_and(|bytes| {
                bytes
                    .windows(token.label.len())
                    .any(|w| w == token.label.as_bytes())
            })
        })
        .expect("the token's directory");
    let conf = write_softhsm_conf(&token.scratch_dir().join("remote"));
    let target = conf
        .with_file_name("tokens")
        .join(source.file_name().expect("token directory name"));
    std::fs::create_dir_all(&target).expect("remote token directory");
    for file in std::fs::read_dir(&source).expect("token files") {
        let file = file.expect("token file").path();
        std::fs::copy(&file, target.join(file.file_name().expect("file name")))
            .expect("copy token file");
    }
    conf
}

impl Drop for RemoteToken {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An entropy source whose output a test scripts, e.g. stuck at zero to close the health gate.
pub struct ScriptedSource<F> {
    name: &'static str,
    fill: F,
}

impl<F: Fn(&mut [u8]) + Send + Sync> ScriptedSource<F> {
    /// A source named `name` that fills buffers with `fill`.
    pub fn new(name: &'static str, fill: F) -> Self {
        Self { name, fill }
    }
}

impl<F: Fn(&mut [u8]) + Send + Sync> EntropySource for ScriptedSource<F> {
    fn name(&self) -> &str {
        self.name
    }

    fn fill(&self, buf: &mut [u8]) -> Result<(), SourceError> {
        (self.fill)(buf);
        Ok(())
    }
}

/// The first line of `path` (a password or PIN file).
pub fn first_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("readable file")
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

pub mod bench;
pub mod daemon;
pub mod load;
pub mod postgres;

/// Runs `openssl` with `args` in `dir`; panics with its output unless it succeeds, else returns
/// stdout and stderr together.
pub fn openssl(args: &[&str], dir: &Path) -> String {
    let output = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "openssl {args:?}: {text}");
    text
}

/// `openssl req MODE` with a fresh P-256 key written to `key_file` (`MODE` is `-new` for a CSR,
/// `-x509` for a self-signed certificate), then `rest`, in `dir`.
pub fn openssl_p256_request(dir: &Path, mode: &str, key_file: &str, rest: &[&str]) -> String {
    let mut args = vec![
        "req",
        mode,
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key_file,
    ];
    args.extend_from_slice(rest);
    openssl(&args, dir)
}

/// `openssl x509 -req`: signs the request `csr` with `ca.pem`/`ca.key` in `dir` for `days`,
/// adding the extensions in the file `extensions`, into `out`.
pub fn openssl_ca_sign(dir: &Path, csr: &str, days: &str, extensions: &str, out: &str) -> String {
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            days,
            "-extfile",
            extensions,
            "-out",
            out,
        ],
        dir,
    )
}

/// Points this process's SoftHSM2 at `conf` (another process's token directory, e.g. a daemon's),
/// before the module is loaded. Only for single-purpose processes such as benchmarks.
pub fn use_softhsm_conf(conf: &Path) {
    // Edition 2021: safe to call; it must run before this process loads the PKCS#11 module.
    std::env::set_var("SOFTHSM2_CONF", conf);
}

/// Whether the tests run as root (then some run programs as another user, and the daemon's
/// memory can be read).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

/// A loopback TCP port free at the moment (another process may take it before the caller binds
/// it: callers that can retry on another port should).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}
